/** Applies a listener's limits to its server: connection cap, idle, header, request and body timeouts. */
import type http from 'node:http';
import type https from 'node:https';
import type { Server as NetServer, Socket } from 'node:net';
import type { InboundListenerConfig } from '../config/schema/index.js';
import { connectionOf, knownConnection } from './connection.js';

/** Every listener's `limits`, inbound and outbound alike (the schema defines them once). */
export type ListenerLimits = InboundListenerConfig['limits'];

/** Whether a request carries a body (a length above 0, or a transfer coding). */
export function requestHasBody(headers: http.IncomingHttpHeaders): boolean {
  const length = headers['content-length'];
  return length === undefined ? headers['transfer-encoding'] !== undefined : length !== '0';
}

/**
 * Options for http(s).createServer: Node checks the header and request timeouts on an interval
 * (30 s by default), which would let a slow-header client hold a connection far past its limit,
 * and that interval can only be set at construction. A slow-header client gets 408 and is closed.
 */
export function httpServerOptions(limits: ListenerLimits): http.ServerOptions {
  return {
    headersTimeout: limits.headersTimeout * 1000,
    // The whole request, body included; a body that stalls is cut sooner (bodyIdleTimeout).
    requestTimeout: limits.requestTimeout * 1000,
    connectionsCheckingInterval: Math.min(1000, (limits.headersTimeout * 1000) / 2),
  };
}

/**
 * A client waiting on a silent upstream is silent too. The forwarder gives up on the upstream after
 * idleTimeout and answers a JSON 502; the client's connection is only cut this much later, so the
 * answer gets there first.
 */
const ANSWER_BEFORE_CUT_MS = 1000;

export type TimeoutReport = (reason: 'body_idle' | 'idle', socket: Socket) => void;

/**
 * HTTP listeners, after construction with httpServerOptions(): idleness, and no silent loss of
 * headers. `capConnections`: plaintext (outbound) listeners cap connections here; TLS listeners
 * count only completed handshakes (see connection-gate.ts).
 */
export function applyHttpLimits(
  server: http.Server | https.Server,
  limits: ListenerLimits,
  capConnections: boolean,
  report: TimeoutReport,
): void {
  if (capConnections) server.maxConnections = limits.maxConnections;
  // Node keeps the first 2,000 headers and silently drops the rest — Transfer-Encoding among them,
  // which turned a body into nothing. No count limit: the header size limit (16 KiB, 431) holds.
  server.maxHeadersCount = 0;
  server.keepAliveTimeout = Math.min(limits.idleTimeout, 65) * 1000;
  server.setTimeout(limits.idleTimeout * 1000 + ANSWER_BEFORE_CUT_MS, (socket: Socket) => {
    report(knownConnection(socket)?.receivingBody ? 'body_idle' : 'idle', socket);
    socket.destroy();
  });
}

/**
 * While a request body arrives, the connection may be silent for bodyIdleTimeout only: a client
 * trickling bodies holds an app connection per request, and must not hold it for idleTimeout.
 * That holds after the answer too: when the app answers before the body is all there, the rest is
 * read and dropped (request-body.ts), and Node's server would give that connection its keep-alive
 * timeout once the response is out.
 */
export function guardRequestBody(req: http.IncomingMessage, res: http.ServerResponse, limits: ListenerLimits): void {
  if (!requestHasBody(req.headers)) return;
  const socket = req.socket;
  const bodyIdle = limits.bodyIdleTimeout * 1000;
  const connection = connectionOf(socket);
  connection.receivingBody = true;
  socket.setTimeout(bodyIdle);
  req.once('end', () => {
    connection.receivingBody = false;
    if (!socket.destroyed) socket.setTimeout(limits.idleTimeout * 1000 + ANSWER_BEFORE_CUT_MS);
  });
  // After Node's own 'finish' listener, which set the keep-alive timeout.
  res.once('finish', () => {
    if (!req.complete && !socket.destroyed) socket.setTimeout(bodyIdle);
  });
}

/**
 * Byte pipes and h2 servers. `idleSockets`: a socket silent for idleTimeout is closed (tcp); h2
 * sessions have their own idle limit (h2/idle-connections.ts), as nghttp2 reads the socket itself
 * and a socket timeout would cut a busy session idleTimeout after it connected.
 */
export function applyRawLimits(server: NetServer, limits: ListenerLimits, capConnections: boolean, idleSockets: boolean): void {
  if (capConnections) server.maxConnections = limits.maxConnections;
  if (!idleSockets) return;
  server.on('connection', (socket: Socket) => {
    socket.setTimeout(limits.idleTimeout * 1000, () => socket.destroy());
  });
}
