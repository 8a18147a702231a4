/**
 * Inbound mTLS in http mode: terminates TLS with the pod's certificate, requires and verifies a
 * client certificate, normalizes and authorizes the request target, tells the app who called, and
 * forwards plaintext HTTP to the app.
 */
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { formatHostPort } from '../../config/parse.js';
import type { InboundListenerConfig } from '../../config/schema/index.js';
import { ErrorCodes } from '../../errors.js';
import { admitRequest, inboundMtls, type RequestRefusal } from '../admission.js';
import { callerHeaders, isCallerHeader } from '../caller-headers.js';
import { connectionOf } from '../connection.js';
import { jsonErrorBody, sendJsonError } from '../json-error.js';
import { guardRequestBody, httpServerOptions } from '../limits.js';
import { type Listener, type ListenerDeps, listenerHandle } from '../listener.js';
import { IGNORE_BODY } from '../listener-types.js';
import { http1HostProblem } from '../request-host.js';
import { createHttpForwarder } from './http-forwarder.js';
import { Pool } from './undici-pool.js';

export function createInboundHttpListener(config: InboundListenerConfig, index: number, deps: ListenerDeps): Listener {
  const log = deps.logger.child({ listener: config.name, direction: 'inbound' });
  const targetText = formatHostPort(config.target);
  // Kept-alive connections to the app, as many as the listener admits clients: a client holding one
  // (a slow body) only ever holds its own. Upgrades (WebSocket) get their own through http-proxy.
  const appPool = new Pool(`http://${targetText}`, { connections: config.limits.maxConnections });
  const upgradeAgent = new http.Agent();
  const forwarder = createHttpForwarder({
    target: `http://${targetText}`,
    pool: () => appPool,
    upgradeAgent,
    dropRequestHeader: isCallerHeader,
    idleTimeoutMs: config.limits.idleTimeout * 1000,
    bodyRelayed: deps.bodyRelayed ?? IGNORE_BODY,
    onError(err, _req, res) {
      const code = err.code ?? 'ERROR';
      deps.audit.warn({ event: 'app_unreachable', listener: config.name, remoteAddress: targetText, reason: code }, 'app request failed');
      if (res instanceof http.ServerResponse)
        sendJsonError(res, 502, ErrorCodes.APP_UNREACHABLE, `the app at ${targetText} did not answer (${code})`);
      else res.destroy();
    },
  });

  const mtls = inboundMtls(config, deps);
  /**
   * Normalizes the target (the app gets exactly the path that was authorized), applies the allow
   * rules, and returns the caller headers to append — or why the request is refused.
   */
  const admit = (req: http.IncomingMessage): { headers: string[] } | { refused: RequestRefusal } => {
    const socket = req.socket as TLSSocket;
    const decision = admitRequest(mtls.admission, socket, req.method ?? 'GET', req.url ?? '/', http1HostProblem(req.rawHeaders));
    if ('refused' in decision) return decision;
    req.url = decision.target;
    if (config.rewriteHost) req.headers.host = config.rewriteHost;
    return { headers: callerHeaders(config, decision.peer, socket, req.headers.host, req.headers['x-forwarded-for']) };
  };

  const server = https.createServer({ ...httpServerOptions(config.limits), ...mtls.serverOptions }, (req, res) => {
    const connection = connectionOf(req.socket);
    // Pipelined behind a refusal: ignored, and ended with the connection (Connection.closing).
    if (connection.closing) return;
    // Busy until the response ends: the gate sheds idle connections only.
    connection.requestInFlight(res);
    const admitted = admit(req);
    if ('refused' in admitted) {
      const { status, code, message } = admitted.refused;
      // Close the connection after the answer: a refused request's body is never read, and a
      // denied peer must not keep holding a slot of limits.maxConnections with a kept-alive one.
      res.shouldKeepAlive = false;
      connection.closing = true;
      return sendJsonError(res, status, code, message);
    }
    guardRequestBody(req, res, config.limits);
    forwarder.web(req, res, admitted.headers);
  });
  // WebSocket (and any HTTP/1.1 upgrade): the same admission, then a byte pipe.
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    // Pipelined behind a refusal: the refusal is already written; end after it.
    const connection = connectionOf(req.socket);
    if (connection.closing) return socket.end();
    // A WebSocket is a request in flight for as long as it is open.
    connection.requestInFlight(socket);
    const admitted = admit(req);
    if (!('refused' in admitted)) return forwarder.ws(req, socket, head, admitted.headers);
    const { status, code, message } = admitted.refused;
    const body = jsonErrorBody(code, message);
    socket.end(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\nx-sidecar-error: ${code}\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  });
  mtls.attach(server);

  return listenerHandle({
    config,
    index,
    kind: 'http',
    direction: 'inbound',
    server,
    deps,
    logger: log,
    afterDrain: () => {
      upgradeAgent.destroy();
      void appPool.destroy();
    },
  });
}
