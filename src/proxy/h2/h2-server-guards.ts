/**
 * The server-side guards every h2 listener gets: bounded settings, an error path for every session
 * and stream (no peer may end the process), idle sessions and streams closed, and the rapid-reset
 * defence.
 */
import http2 from 'node:http2';
import type { ErrorCode } from '../../errors.js';
import type { AuditLog } from '../../telemetry/audit.js';
import type { Metrics } from '../../telemetry/metrics.js';
import type { ListenerLimits } from '../limits.js';
import { answerStream } from './h2-answers.js';
import { watchIdleSessions } from './idle-connections.js';
import { watchIdleStream } from './stream-idle.js';

const { NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_NO_ERROR } = http2.constants;

/** Swallows an error event whose consequence (a closed stream or session) is handled where it matters. */
const ignore = () => undefined;

/** The listener an h2 server belongs to: its name and limits (idleTimeout for streams and sessions). */
export interface H2ListenerConfig {
  readonly name: string;
  readonly limits: ListenerLimits;
}

/**
 * Settings for an h2 server: a bounded number of concurrent streams and bounded memory per
 * connection (Node's defaults for the rest, written out so they are visible and deliberate).
 */
export function h2ServerOptions(maxConcurrentStreams: number): http2.ServerOptions {
  return {
    settings: { maxConcurrentStreams },
    // Per-session buffered data (MB); beyond it new streams are refused with ENHANCE_YOUR_CALM.
    maxSessionMemory: 10,
    // Header pairs per block, and refused/invalid frames before the session is torn down.
    maxHeaderListPairs: 128,
    maxSessionRejectedStreams: 100,
    maxSessionInvalidFrames: 1000,
  };
}

/**
 * Rapid reset (CVE-2023-44487): a client opening streams and resetting them at once makes the
 * server do the work of each while never being limited by maxConcurrentStreams. Like Envoy, a
 * connection whose streams are mostly reset by the peer before any response (past a minimum count,
 * so gRPC clients cancelling calls on deadline are fine) gets GOAWAY(ENHANCE_YOUR_CALM).
 */
const RAPID_RESET_MIN_STREAMS = 200;
/** Socket errors of a client going away, not of anything it sent. */
const CLIENT_GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT']);
/** Time for a GOAWAY to reach an abusive peer before its connection is destroyed. */
const GOAWAY_GRACE_MS = 200;

interface SessionStats {
  streams: number;
  prematureResets: number;
}

/**
 * Error paths for every session and stream of `server`, and the rapid-reset defence. Call before
 * adding a 'stream' handler. A silent stream is answered 504 with `timeoutCode` (app or upstream).
 */
export function guardH2Server(
  server: http2.Http2Server | http2.Http2SecureServer,
  config: H2ListenerConfig,
  timeoutCode: ErrorCode,
  { metrics, audit }: { readonly metrics: Metrics; readonly audit: AuditLog },
): void {
  const listener = config.name;
  const idleTimeoutMs = config.limits.idleTimeout * 1000;
  const stats = new WeakMap<http2.Http2Session, SessionStats>();
  server.on('session', (session: http2.ServerHttp2Session) => {
    stats.set(session, { streams: 0, prematureResets: 0 });
    session.on('error', ignore);
    // A peer that ended its side is gone: HTTP/2 has no half-closed connections, and the streams it
    // left would otherwise wait on the app until idleTimeout (Go's server closes on EOF too).
    session.socket?.once('end', () => session.destroy());
  });
  // Sessions without a call for idleTimeout are closed, GOAWAY first. Also what reclaims a session
  // nghttp2 answered a protocol error on with GOAWAY: Node 20 then stops reading the socket but
  // keeps it open (it never sees the peer's FIN: CLOSE-WAIT).
  watchIdleSessions(server, idleTimeoutMs);
  // Bad frames, bad SETTINGS, a TCP reset mid-session: the session ends; the process does not.
  server.on('sessionError', (err: Error & { code?: string }, session?: http2.ServerHttp2Session) => {
    // A client that went away (its process exited, its host rebooted: a TCP reset) did nothing
    // wrong: not counted or audited as a protocol error, which docs/security.md calls abuse.
    if (CLIENT_GONE.has(err.code ?? '')) {
      session?.destroy();
      return;
    }
    metrics.h2SessionsRefused.inc({ listener, reason: 'protocol_error' });
    audit.warn(
      {
        event: 'h2_session_error',
        listener,
        remoteAddress: session?.socket?.remoteAddress,
        reason: err.code ?? 'error',
        detail: err.message,
      },
      'an HTTP/2 connection failed',
    );
    session?.destroy();
  });
  server.on('stream', (stream: http2.ServerHttp2Stream) => {
    stream.on('error', ignore);
    // One silent stream must not be held for the life of a busy connection.
    watchIdleStream(stream, idleTimeoutMs, () =>
      answerStream(stream, 504, timeoutCode, `no data on this stream for limits.idleTimeout (${config.limits.idleTimeout}s)`),
    );
    const session = stream.session;
    const counts = session ? stats.get(session) : undefined;
    if (!session || !counts) return;
    counts.streams++;
    stream.once('close', () => {
      if (stream.headersSent || stream.rstCode === NGHTTP2_NO_ERROR) return;
      counts.prematureResets++;
      if (counts.streams < RAPID_RESET_MIN_STREAMS || counts.prematureResets * 2 <= counts.streams || session.closed) return;
      metrics.h2SessionsRefused.inc({ listener, reason: 'rapid_reset' });
      audit.record(
        {
          event: 'h2_rapid_reset',
          listener,
          remoteAddress: session.socket?.remoteAddress,
          reason: 'rapid_reset',
          detail: `${counts.prematureResets} of ${counts.streams} streams reset before a response`,
        },
        'closed an HTTP/2 connection that reset most of its streams (rapid reset)',
      );
      // GOAWAY first, so the client learns why; the socket is cut shortly after, whatever it does.
      session.goaway(NGHTTP2_ENHANCE_YOUR_CALM);
      session.close();
      setTimeout(() => session.destroy(), GOAWAY_GRACE_MS).unref();
    });
  });
}
