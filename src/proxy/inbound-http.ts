/**
 * Inbound mTLS in http mode: terminates TLS with the pod's certificate, requires and verifies a
 * client certificate, tells the app who called, and forwards plaintext HTTP to the app.
 */
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import httpProxy from 'http-proxy';
import { formatHostPort } from '../config/parse.js';
import type { InboundListenerConfig } from '../config/schema.js';
import { ErrorCodes } from '../errors.js';
import { AuthorizationPolicy } from '../tls/authorization.js';
import { formatXfcc, peerIdentity, rfc9440Headers } from '../tls/peer.js';
import { normalizedPath, refusal, reportRejectedHandshakes } from './admission.js';
import { hopByHopNames, stripHopByHop } from './hop-by-hop.js';
import { sendJsonError } from './json-error.js';
import { httpServerOptions } from './limits.js';
import { type Listener, type ListenerDeps, listenerHandle } from './listener.js';

/** Headers that carry caller identity; a client must never be able to set them itself. */
const IDENTITY_HEADERS = ['x-forwarded-client-cert', 'client-cert', 'client-cert-chain'];

export function createInboundHttpListener(config: InboundListenerConfig, index: number, deps: ListenerDeps): Listener {
  const { contexts, metrics, audit } = deps;
  const log = deps.logger.child({ listener: config.name, direction: 'inbound' });
  const target = `http://${formatHostPort(config.target)}`;
  const appAgent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64 });
  const proxy = httpProxy.createProxyServer({
    target,
    agent: appAgent,
    xfwd: true,
    ws: true,
    proxyTimeout: config.limits.idleTimeout * 1000,
  });

  proxy.on('proxyReq', (proxyReq, req) => {
    for (const name of hopByHopNames(req.headers)) proxyReq.removeHeader(name);
  });
  proxy.on('proxyRes', (proxyRes) => stripHopByHop(proxyRes.headers));
  proxy.on('error', (err, _req, res) => {
    const code = (err as NodeJS.ErrnoException).code ?? 'ERROR';
    log.warn({ event: 'app_unreachable', target: formatHostPort(config.target), reason: code }, 'app request failed');
    if (res instanceof http.ServerResponse) {
      sendJsonError(res, 502, ErrorCodes.APP_UNREACHABLE, `the app at ${formatHostPort(config.target)} did not answer (${code})`);
    } else {
      res.destroy();
    }
  });

  const policy = config.authorization ? new AuthorizationPolicy(config.authorization) : undefined;
  const admission = { listener: config.name, policy, metrics, audit };
  /**
   * Strips identity headers a client sent, applies the listener's allow rules, and sets the headers
   * that tell the app who called. Returns why the request is refused, or undefined to forward it.
   */
  const admit = (req: http.IncomingMessage): string | undefined => {
    for (const name of IDENTITY_HEADERS) delete req.headers[name];
    const socket = req.socket as TLSSocket;
    const peer = peerIdentity(socket);
    const refused = refusal(
      admission,
      peer,
      socket.remoteAddress,
      policy ? { method: req.method ?? 'GET', path: normalizedPath(req.url) } : undefined,
    );
    if (refused || !peer) return refused;
    if (config.forwardClientCert === 'xfcc') req.headers['x-forwarded-client-cert'] = formatXfcc(peer);
    if (config.forwardClientCert === 'rfc9440') Object.assign(req.headers, rfc9440Headers(socket));
    if (config.rewriteHost) req.headers.host = config.rewriteHost;
    return undefined;
  };

  const server = https.createServer(
    { ...httpServerOptions(config.limits), ...contexts.serverOptions(), requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      const refused = admit(req);
      if (refused) return sendJsonError(res, 403, ErrorCodes.AUTHZ_DENIED, refused);
      proxy.web(req, res);
    },
  );
  // WebSocket (and any HTTP/1.1 upgrade): the same admission, then a byte pipe.
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const refused = admit(req);
    if (!refused) return proxy.ws(req, socket, head);
    const body = JSON.stringify({ error: { code: ErrorCodes.AUTHZ_DENIED, message: refused } });
    socket.end(
      `HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  });
  // Rotation: new handshakes use the new certificate; established connections keep theirs.
  contexts.onChange(() => server.setSecureContext(contexts.serverOptions()));

  reportRejectedHandshakes(server, config.name, metrics, audit);

  return listenerHandle({
    config,
    index,
    kind: 'http',
    direction: 'inbound',
    server,
    metrics,
    logger: log,
    details: { target: formatHostPort(config.target) },
    afterDrain: () => {
      appAgent.destroy();
    },
  });
}
