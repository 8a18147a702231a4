/**
 * The client side of h2 forwarding: one multiplexed session per target and TLS generation,
 * reconnected when it closes, and what the relay needs to know about a session — whether its
 * server accepted it, and which streams its GOAWAY left unprocessed.
 */
import http2 from 'node:http2';
import { PerGeneration } from '../../tls/generation.js';

const { NGHTTP2_REFUSED_STREAM } = http2.constants;

/** How long a replaced session keeps taking the streams already sent its way before it is closed. */
const OLD_SESSION_CLOSE_DELAY_MS = 1000;

/**
 * Client sessions whose server sent its SETTINGS: it completed its side of the TLS handshake and
 * accepted the connection (in TLS 1.3 a server checks the client's certificate after the client
 * sees its handshake done, so only this tells a crash mid-request from a refused certificate).
 */
const accepted = new WeakSet<http2.ClientHttp2Session>();

/**
 * The last stream id of the GOAWAY each client session received. RFC 9113 §6.8: only streams above
 * it were never processed. Node gives every stream of a session ended by GOAWAY(code) rstCode
 * `code`, so a GOAWAY(REFUSED_STREAM) that covers a stream the server had read looks like the
 * stream was refused — sending such a stream again made the app see a POST twice.
 */
const goawayLastStream = new WeakMap<http2.ClientHttp2Session, number>();

/**
 * Records the GOAWAYs of `session`. The smallest last stream id counts: a graceful shutdown sends
 * GOAWAY(2^31-1) first, then the real one (nghttp2's shutdown notice, Envoy's drain), and nghttp2
 * refused the streams above each as it came.
 */
function watchGoaway(session: http2.ClientHttp2Session): void {
  session.on('goaway', (_code: number, lastStreamID: number) =>
    goawayLastStream.set(session, Math.min(goawayLastStream.get(session) ?? Number.POSITIVE_INFINITY, lastStreamID)),
  );
}

/**
 * Whether the upstream refused `stream` without processing it, so that sending it again is safe:
 * above the last stream id of the session's GOAWAY, or reset by the peer itself with
 * REFUSED_STREAM while no GOAWAY came (a session-wide code is not a statement about this stream).
 */
export function refusedUnprocessed(stream: http2.ClientHttp2Stream, session: http2.ClientHttp2Session): boolean {
  if (stream.rstCode !== NGHTTP2_REFUSED_STREAM || typeof stream.id !== 'number') return false;
  // No GOAWAY (its 'goaway' event comes before the streams' errors): the peer's own RST_STREAM(7).
  const lastStreamID = goawayLastStream.get(session);
  return lastStreamID === undefined || stream.id > lastStreamID;
}

/** Whether the server of `session` accepted it (sent its SETTINGS). */
export function sessionAccepted(session: http2.ClientHttp2Session | undefined): boolean {
  return session !== undefined && accepted.has(session);
}

/**
 * The error that really ended a stream: Node cancels the streams of a failed session with
 * ERR_HTTP2_STREAM_CANCEL and the session's error (ECONNREFUSED, a TLS alert) as its cause.
 */
export function rootCause(err: Error & { code?: string }): Error & { code?: string } {
  const cause = err.cause as (Error & { code?: string }) | undefined;
  return err.code === 'ERR_HTTP2_STREAM_CANCEL' && cause instanceof Error ? cause : err;
}

export class H2Session {
  readonly #sessions: PerGeneration<http2.ClientHttp2Session>;

  constructor(
    authority: string,
    options: () => http2.SecureClientSessionOptions | http2.ClientSessionOptions,
    opts: {
      /** The TLS generation now (a session presents the certificate of the generation it was made in); none: one for ever. */
      readonly generation?: () => number;
      /** TCP connect plus TLS handshake must finish within this (limits.connectTimeout); a silent target fails the calls waiting on it. */
      readonly connectTimeoutMs?: number;
      /**
       * A session with no activity this long is closed (GOAWAY; open streams finish). A session of
       * an old TLS generation is replaced at the next call; with no next call, this ends it.
       */
      readonly idleTimeoutMs?: number;
    } = {},
  ) {
    const { generation = () => 0, connectTimeoutMs, idleTimeoutMs } = opts;
    this.#sessions = new PerGeneration(
      generation,
      () => {
        const session = http2.connect(authority, options());
        session.on('error', () => session.destroy());
        if (connectTimeoutMs) {
          const timer = setTimeout(
            () =>
              session.destroy(
                Object.assign(new Error(`no connection to ${authority} within ${connectTimeoutMs} ms`), { code: 'ETIMEDOUT' }),
              ),
            connectTimeoutMs,
          );
          session.once('connect', () => clearTimeout(timer));
          session.once('close', () => clearTimeout(timer));
        }
        if (idleTimeoutMs) session.setTimeout(idleTimeoutMs, () => session.close());
        session.once('remoteSettings', () => accepted.add(session));
        // Once per session, where it is made: what relayStream's re-send decision reads.
        watchGoaway(session);
        return session;
      },
      // A session of an old generation finishes its streams and closes. Not at once: streams
      // submitted to it just before may not be on the wire yet, and the GOAWAY of close() would
      // refuse them (REFUSED_STREAM, a 502 for the app) — a few per rotation under load.
      (old) => setTimeout(() => old.close(), OLD_SESSION_CLOSE_DELAY_MS).unref(),
      // A closed session (the server went away, or its certificate ended) is replaced at the next call.
      (session) => !session.closed && !session.destroyed,
    );
  }

  /** The session for a new stream: the current generation's, open. */
  get(): http2.ClientHttp2Session {
    return this.#sessions.get();
  }

  close(): void {
    this.#sessions.peek()?.close();
  }
}
