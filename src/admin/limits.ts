/**
 * The admin server's limits. In a pod it listens on the pod IP (the kubelet probes it from the
 * node), so any pod in the cluster can open connections to it; without limits, 3,000 half-sent
 * requests were all accepted and held for Node's default minute. Like the listeners:
 *
 * - headers within HEADERS_TIMEOUT_MS, the whole request within REQUEST_TIMEOUT_MS, an idle
 *   keep-alive connection closed after KEEP_ALIVE_MS; checked every second, not Node's 30 s;
 * - at most MAX_CONNECTIONS open; a new connection past it closes the oldest one that is not being
 *   answered (silent, mid-headers or idle), so a flood competes only with itself and the kubelet's
 *   probe — which sends its request at once and is answered at once — still gets through. Only when
 *   every connection is mid-answer is the newcomer closed instead.
 *
 * - at most ADMIN_LIMITS.maxRequestsPerSocket requests per connection, so pipelining is bounded.
 *
 * Fixed values, not settings: every caller sends one small GET and reads a small answer.
 */
import type http from 'node:http';
import type { Socket } from 'node:net';

export const ADMIN_LIMITS = {
  maxConnections: 64,
  headersTimeoutMs: 5000,
  requestTimeoutMs: 10_000,
  keepAliveMs: 5000,
  /** Probes and scrapes send a few hundred bytes of headers. */
  maxHeaderSize: 8192,
  /**
   * Requests answered on one connection, then it is closed (Node answers pipelined extras 503).
   * Kubelet probes open a connection each; Prometheus reconnects after this many scrapes. 300
   * pipelined GET /metrics on each of 64 connections kept the probes waiting.
   */
  maxRequestsPerSocket: 16,
} as const;

export function adminServerOptions(): http.ServerOptions {
  return {
    headersTimeout: ADMIN_LIMITS.headersTimeoutMs,
    requestTimeout: ADMIN_LIMITS.requestTimeoutMs,
    keepAliveTimeout: ADMIN_LIMITS.keepAliveMs,
    connectionsCheckingInterval: 1000,
    maxHeaderSize: ADMIN_LIMITS.maxHeaderSize,
  };
}

/** Caps connections, shedding the oldest one not being answered, and requests per connection. */
export function capConnections(server: http.Server, max: number = ADMIN_LIMITS.maxConnections): void {
  server.maxRequestsPerSocket = ADMIN_LIMITS.maxRequestsPerSocket;
  // Insertion order: the first element is the oldest connection.
  const open = new Set<Socket>();
  const answering = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    if (open.size >= max) {
      let oldest: Socket | undefined;
      for (const candidate of open) {
        if (!answering.has(candidate)) {
          oldest = candidate;
          break;
        }
      }
      if (!oldest) {
        socket.destroy();
        return;
      }
      open.delete(oldest);
      oldest.destroy();
    }
    open.add(socket);
    // A connection that stays silent from its first byte on is cut too (headersTimeout counts
    // from the first byte of a request only).
    socket.setTimeout(ADMIN_LIMITS.requestTimeoutMs, () => socket.destroy());
    socket.once('close', () => {
      open.delete(socket);
      answering.delete(socket);
    });
  });
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const socket = req.socket;
    answering.add(socket);
    res.once('close', () => answering.delete(socket));
  });
}
