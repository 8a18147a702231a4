/**
 * Inbound mTLS in http mode: terminates TLS with the pod's certificate, requires and verifies a
 * client certificate, tells the app who called, and forwards plaintext HTTP to the app.
 */
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { Pool } from 'undici';
import { formatHostPort } from '../config/parse.js';
import type { InboundListenerConfig } from '../config/schema.js';
import { ErrorCodes } from '../errors.js';
import { peerIdentity } from '../tls/peer.js';
import { callerHeaders, IDENTITY_HEADERS, inboundMtls, normalizedPath, refusal } from './admission.js';
import { createHttpForwarder, POOL_CONNECTIONS } from './http-forwarder.js';
import { jsonErrorBody, sendJsonError } from './json-error.js';
import { httpServerOptions } from './limits.js';
import { type Listener, type ListenerDeps, listenerHandle } from './listener.js';

export function createInboundHttpListener(config: InboundListenerConfig, index: number, deps: ListenerDeps): Listener {
  const log = deps.logger.child({ listener: config.name, direction: 'inbound' });
  const targetText = formatHostPort(config.target);
  // Kept-alive connections to the app; upgrades (WebSocket) get their own through http-proxy.
  const appPool = new Pool(`http://${targetText}`, { connections: POOL_CONNECTIONS });
  const upgradeAgent = new http.Agent();
  const forwarder = createHttpForwarder({
    target: `http://${targetText}`,
    pool: () => appPool,
    upgradeAgent,
    xfwd: true,
    idleTimeoutMs: config.limits.idleTimeout * 1000,
    onError(err, _req, res) {
      const code = err.code ?? 'ERROR';
      log.warn({ event: 'app_unreachable', target: targetText, reason: code }, 'app request failed');
      if (res instanceof http.ServerResponse)
        sendJsonError(res, 502, ErrorCodes.APP_UNREACHABLE, `the app at ${targetText} did not answer (${code})`);
      else res.destroy();
    },
  });

  const mtls = inboundMtls(config, deps);
  /**
   * Strips identity headers a client sent, applies the listener's allow rules, and sets the headers
   * that tell the app who called. Returns why the request is refused, or undefined to forward it.
   */
  const admit = (req: http.IncomingMessage): string | undefined => {
    // Deleting a property turns the headers object into a slow dictionary; only when there is one.
    for (const name of IDENTITY_HEADERS) if (req.headers[name] !== undefined) delete req.headers[name];
    const socket = req.socket as TLSSocket;
    const peer = peerIdentity(socket);
    const request = mtls.admission.policy ? { method: req.method ?? 'GET', path: normalizedPath(req.url) } : undefined;
    const refused = refusal(mtls.admission, peer, socket.remoteAddress, request);
    if (refused || !peer) return refused;
    Object.assign(req.headers, callerHeaders(config, peer, socket));
    if (config.rewriteHost) req.headers.host = config.rewriteHost;
    return undefined;
  };

  const server = https.createServer({ ...httpServerOptions(config.limits), ...mtls.serverOptions }, (req, res) => {
    const refused = admit(req);
    if (refused) return sendJsonError(res, 403, ErrorCodes.AUTHZ_DENIED, refused);
    forwarder.web(req, res);
  });
  // WebSocket (and any HTTP/1.1 upgrade): the same admission, then a byte pipe.
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const refused = admit(req);
    if (!refused) return forwarder.ws(req, socket, head);
    const body = jsonErrorBody(ErrorCodes.AUTHZ_DENIED, refused);
    socket.end(
      `HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  });
  mtls.attach(server);

  return listenerHandle({
    config,
    index,
    kind: 'http',
    direction: 'inbound',
    server,
    metrics: deps.metrics,
    logger: log,
    details: { target: targetText },
    afterDrain: () => {
      upgradeAgent.destroy();
      void appPool.destroy();
    },
  });
}
