/**
 * The idle limit of an h2 listener: a session with no open stream for idleTimeout — since it
 * started or since its last stream closed — is closed, GOAWAY first. One timer per listener
 * checks every open session.
 *
 * Idle means no calls, not no bytes: a gRPC client with keepalive PINGs an idle connection every
 * few seconds, and counting those as traffic kept it open for ever, while counting only bytes of
 * the TLS socket under it cut it without a word. A close without GOAWAY races the client: a call
 * it sends at that moment goes onto a connection that is being cut and fails (UNAVAILABLE). With
 * GOAWAY and the last stream id, the client stops opening streams on the connection at once, and
 * a stream it sent before hearing of it is ignored here and retried by the client on a new one
 * (RFC 9113 §6.8). The socket is closed a grace period later, so the GOAWAY is read before a reset.
 *
 * Before a session exists, the TLS handshake has its own limit (limits.handshakeTimeout); a
 * cleartext h2 server makes its session as the connection is accepted.
 *
 * Not Node's per-session timer (`session.setTimeout`): when a session closes, Node marks it
 * destroyed and only then calls `setTimeout(0)` on it, which returns early for a destroyed
 * session — the timer stays armed and holds the session, its socket and their buffers (~2.4 KB)
 * until it fires. At the default 120 s, an app opening a session per call kept 12 MB per 5,000
 * calls, and a 256 Mi container was OOM-killed (issue 24, defect 14).
 */
import type http2 from 'node:http2';
import { performance } from 'node:perf_hooks';

/**
 * http2.constants.NGHTTP2_NO_ERROR, written out: this module is reached from tcp mode too (the
 * connection gate, the deadlines), and a value import of `node:http2` would load HTTP/2 there.
 */
const NGHTTP2_NO_ERROR = 0;

/** Checks per idleTimeout: an idle session gets its GOAWAY between 1 and 1.25 idleTimeouts after its last stream. */
const CHECKS_PER_TIMEOUT = 4;
/** However short idleTimeout is, sessions are not checked more often than this. */
const MIN_CHECK_MS = 50;
/** Between the GOAWAY of an idle close and the close of its socket: time for the client to read it. */
export const IDLE_GOAWAY_GRACE_MS = 1000;

interface Activity {
  /** Streams opened and not yet closed. */
  open: number;
  /** When the last stream closed, or the session started (performance.now()). */
  quietSince: number;
  /** The GOAWAY is sent; the session is on its way out. */
  closing: boolean;
}

/**
 * Closes a session gracefully: GOAWAY with the last stream id now, then close() once the client
 * had time to read it (it ends when the streams started before the GOAWAY are done); destroyed a
 * grace period after that if it still has not closed (a peer that stopped reading).
 */
export function closeSessionGracefully(session: http2.ServerHttp2Session, graceMs = IDLE_GOAWAY_GRACE_MS): void {
  if (session.destroyed) return;
  if (session.closed) {
    session.destroy();
    return;
  }
  // Without a stream id, Node's goaway() names the last stream the session processed.
  session.goaway(NGHTTP2_NO_ERROR);
  setTimeout(() => {
    if (session.destroyed) return;
    session.close();
    setTimeout(() => session.destroy(), graceMs).unref();
  }, graceMs).unref();
}

/**
 * Calls `onIdle` (by default closeSessionGracefully) once for each session of `server` that has
 * had no open stream for `idleTimeoutMs`. Sessions are forgotten when they close, and the timer
 * runs only while one is open.
 */
export function watchIdleSessions(
  server: http2.Http2Server | http2.Http2SecureServer,
  idleTimeoutMs: number,
  onIdle: (session: http2.ServerHttp2Session) => void = (session) => closeSessionGracefully(session),
): void {
  const open = new Map<http2.ServerHttp2Session, Activity>();
  let timer: NodeJS.Timeout | undefined;
  const check = () => {
    const now = performance.now();
    for (const [session, seen] of open) {
      if (seen.closing || seen.open > 0 || now - seen.quietSince < idleTimeoutMs) continue;
      seen.closing = true;
      onIdle(session);
    }
  };
  server.on('session', (session: http2.ServerHttp2Session) => {
    const seen: Activity = { open: 0, quietSince: performance.now(), closing: false };
    open.set(session, seen);
    session.on('stream', (stream: http2.ServerHttp2Stream) => {
      seen.open++;
      stream.once('close', () => {
        seen.open--;
        seen.quietSince = performance.now();
      });
    });
    session.once('close', () => {
      open.delete(session);
      if (open.size > 0) return;
      clearInterval(timer);
      timer = undefined;
    });
    timer ??= setInterval(check, Math.max(MIN_CHECK_MS, idleTimeoutMs / CHECKS_PER_TIMEOUT)).unref();
  });
}
