/** Applies a listener's limits to its server: connection cap, idle and header timeouts. */
import type http from 'node:http';
import type https from 'node:https';
import type { Server as NetServer, Socket } from 'node:net';

export interface ListenerLimits {
  readonly connectTimeout: number;
  readonly idleTimeout: number;
  readonly headersTimeout: number;
  readonly maxConnections: number;
}

/**
 * Options for http(s).createServer: Node checks the header and request timeouts on an interval
 * (30 s by default), which would let a slow-header client hold a connection far past its limit,
 * and that interval can only be set at construction. A slow-header client gets 408 and is closed.
 */
export function httpServerOptions(limits: ListenerLimits): http.ServerOptions {
  return {
    headersTimeout: limits.headersTimeout * 1000,
    // Bodies may stream for as long as they keep moving; idleness is bounded instead.
    requestTimeout: 0,
    connectionsCheckingInterval: Math.min(1000, (limits.headersTimeout * 1000) / 2),
  };
}

/**
 * A client waiting on a silent upstream is silent too. The forwarder gives up on the upstream after
 * idleTimeout and answers a JSON 502; the client's connection is only cut this much later, so the
 * answer gets there first.
 */
const ANSWER_BEFORE_CUT_MS = 1000;

/** HTTP listeners, after construction with httpServerOptions(): connection cap and idleness. */
export function applyHttpLimits(server: http.Server | https.Server, limits: ListenerLimits): void {
  // Past the cap Node closes new connections at once; open ones are untouched.
  server.maxConnections = limits.maxConnections;
  server.keepAliveTimeout = Math.min(limits.idleTimeout, 65) * 1000;
  server.setTimeout(limits.idleTimeout * 1000 + ANSWER_BEFORE_CUT_MS, (socket) => socket.destroy());
}

/** Byte pipes (tcp mode). */
export function applyRawLimits(server: NetServer, limits: ListenerLimits): void {
  server.maxConnections = limits.maxConnections;
  server.on('connection', (socket: Socket) => {
    socket.setTimeout(limits.idleTimeout * 1000, () => socket.destroy());
  });
}
