/**
 * The idle limit of an h2 listener: a connection on which no byte moved either way for
 * idleTimeout is closed — before its TLS handshake or preface as well as between calls. One timer
 * per listener compares every open connection's byte counts.
 *
 * Not Node's per-session timer (`session.setTimeout`): when a session closes, Node marks it
 * destroyed and only then calls `setTimeout(0)` on it, which returns early for a destroyed
 * session — the timer stays armed and holds the session, its socket and their buffers (~2.4 KB)
 * until it fires. At the default 120 s, an app opening a session per call kept 12 MB per 5,000
 * calls, and a 256 Mi container was OOM-killed (issue 24, defect 14). Nor the socket's own timer:
 * nghttp2 reads and writes the socket itself, so a socket timeout never sees h2 traffic and cut
 * busy sessions idleTimeout after they connected.
 */
import type { Server as NetServer, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

/** Checks per idleTimeout: a silent connection is closed between 1 and 1.25 idleTimeouts after its last byte. */
const CHECKS_PER_TIMEOUT = 4;
/** However short idleTimeout is, connections are not checked more often than this. */
const MIN_CHECK_MS = 50;

interface Activity {
  read: number;
  written: number;
  /** When the byte counts last changed (performance.now()). */
  quietSince: number;
}

/**
 * Calls `onIdle` for each connection of `server` silent for `idleTimeoutMs` (the TCP socket, under
 * TLS and HTTP/2 alike: its counts are the bytes on the wire). Connections are forgotten when they
 * close, and the timer runs only while one is open.
 */
export function watchIdleConnections(server: NetServer, idleTimeoutMs: number, onIdle: (socket: Socket) => void): void {
  const open = new Map<Socket, Activity>();
  let timer: NodeJS.Timeout | undefined;
  const check = () => {
    const now = performance.now();
    for (const [socket, seen] of open) {
      const { bytesRead, bytesWritten } = socket;
      if (bytesRead !== seen.read || bytesWritten !== seen.written) {
        seen.read = bytesRead;
        seen.written = bytesWritten;
        seen.quietSince = now;
      } else if (now - seen.quietSince >= idleTimeoutMs) {
        onIdle(socket);
      }
    }
  };
  server.on('connection', (socket: Socket) => {
    open.set(socket, { read: socket.bytesRead, written: socket.bytesWritten, quietSince: performance.now() });
    socket.once('close', () => {
      open.delete(socket);
      if (open.size > 0) return;
      clearInterval(timer);
      timer = undefined;
    });
    timer ??= setInterval(check, Math.max(MIN_CHECK_MS, idleTimeoutMs / CHECKS_PER_TIMEOUT)).unref();
  });
}
