/**
 * HTTP/2 forwarding shared by the h2 listeners: one multiplexed client session per target
 * (reconnected when it closes, replaced after a rotation), a stream relay that carries headers,
 * body and trailers — what gRPC needs — and the server-side guards every h2 listener gets.
 *
 * No peer may end the process: every stream and session has an error path, and every call that
 * throws on a stream the peer already closed (respond, sendTrailers, request on a closing session)
 * checks first and is guarded. A peer reset, a dead app or a cancelled call ends one stream.
 */
import http2 from 'node:http2';
import { type ErrorCode, ErrorCodes } from '../../errors.js';
import { youngGarbage } from '../../memory/young-garbage.js';
import type { AuditLog } from '../../telemetry/audit.js';
import type { Metrics } from '../../telemetry/metrics.js';
import { HOP_BY_HOP } from '../hop-by-hop.js';
import { jsonErrorBody } from '../json-error.js';
import type { ListenerLimits } from '../limits.js';
import { watchIdleSessions } from './idle-connections.js';
import { countRelayedBytes } from './relayed-bytes.js';
import { streamActive, watchIdleStream } from './stream-idle.js';

const {
  NGHTTP2_CANCEL,
  NGHTTP2_INTERNAL_ERROR,
  NGHTTP2_ENHANCE_YOUR_CALM,
  NGHTTP2_FLAG_END_STREAM,
  NGHTTP2_NO_ERROR,
  NGHTTP2_PROTOCOL_ERROR,
  NGHTTP2_REFUSED_STREAM,
} = http2.constants;

/**
 * Headers that describe one hop of the connection, never forwarded: HTTP/1's hop-by-hop set, which
 * Node's HTTP/2 refuses to send, except `trailer`, which announces gRPC's trailers.
 */
const CONNECTION_HEADERS = new Set([...[...HOP_BY_HOP].filter((name) => name !== 'trailer'), 'http2-settings']);

/** How long a replaced session keeps taking the streams already sent its way before it is closed. */
const OLD_SESSION_CLOSE_DELAY_MS = 1000;

/** Swallows an error event whose consequence (a closed stream or session) is handled where it matters. */
const ignore = () => undefined;

/** The frame type of HEADERS: a frameError on it means the header block could not be sent. */
const HEADERS_FRAME = 0x1;

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

/** Records the GOAWAY of `session` (once per session, whoever created it). */
function watchGoaway(session: http2.ClientHttp2Session): void {
  if (goawayLastStream.has(session)) return;
  goawayLastStream.set(session, Number.POSITIVE_INFINITY);
  session.once('goaway', (_code: number, lastStreamID: number) => goawayLastStream.set(session, lastStreamID));
}

/**
 * Whether the upstream refused `stream` without processing it, so that sending it again is safe:
 * above the last stream id of the session's GOAWAY, or reset by the peer itself with
 * REFUSED_STREAM while no GOAWAY came (a session-wide code is not a statement about this stream).
 */
function refusedUnprocessed(stream: http2.ClientHttp2Stream, session: http2.ClientHttp2Session): boolean {
  if (stream.rstCode !== NGHTTP2_REFUSED_STREAM || typeof stream.id !== 'number') return false;
  const lastStreamID = goawayLastStream.get(session);
  // No GOAWAY (its 'goaway' event comes before the streams' errors): the peer's own RST_STREAM(7).
  if (lastStreamID === undefined || lastStreamID === Number.POSITIVE_INFINITY) return true;
  return stream.id > lastStreamID;
}

/**
 * A response status the relay can give on: HTTP/2 allows any three digits, Node's server only
 * 200–599 (1xx never reach 'response'); respond() throws on the rest.
 */
function relayableStatus(headers: http2.IncomingHttpHeaders): boolean {
  const status = Number(headers[':status']);
  return Number.isInteger(status) && status >= 200 && status <= 599;
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
  #session: http2.ClientHttp2Session | undefined;

  constructor(
    private readonly authority: string,
    private readonly options: () => http2.SecureClientSessionOptions | http2.ClientSessionOptions,
  ) {}

  get(): http2.ClientHttp2Session {
    if (!this.#session || this.#session.closed || this.#session.destroyed) {
      const session = http2.connect(this.authority, this.options());
      session.on('error', () => session.destroy());
      session.once('remoteSettings', () => accepted.add(session));
      session.on('close', () => {
        if (this.#session === session) this.#session = undefined;
      });
      this.#session = session;
    }
    return this.#session;
  }

  /**
   * New streams go to a new session; the old one finishes its streams and closes. Not at once:
   * streams submitted to it just before may not be on the wire yet, and the GOAWAY of close()
   * would refuse them (REFUSED_STREAM, a 502 for the app) — a few per rotation under load.
   */
  renew(): void {
    const old = this.#session;
    this.#session = undefined;
    if (old) setTimeout(() => old.close(), OLD_SESSION_CLOSE_DELAY_MS).unref();
  }

  close(): void {
    this.#session?.close();
  }
}

export interface RelayFailure {
  readonly status: number;
  readonly code: ErrorCode;
  readonly message: string;
}

/** Whether a response can still be started on the stream (respond() throws otherwise). */
function canRespond(stream: http2.ServerHttp2Stream): boolean {
  return !stream.destroyed && !stream.closed && !stream.headersSent;
}

/** Resets a stream that is still open (its response, if any, is incomplete). */
function resetIfOpen(stream: http2.ServerHttp2Stream): void {
  if (!stream.destroyed && !stream.closed) stream.close(NGHTTP2_INTERNAL_ERROR);
}

/** Answers with a JSON error when the stream can still take one; otherwise resets it. */
export function answerStream(stream: http2.ServerHttp2Stream, status: number, code: ErrorCode, message: string): void {
  if (!canRespond(stream)) {
    resetIfOpen(stream);
    return;
  }
  stream.respond({ ':status': status, 'content-type': 'application/json', 'x-sidecar-error': code });
  stream.end(jsonErrorBody(code, message));
}

/**
 * A request whose header block is too large to forward is refused clearly: gRPC calls get
 * RESOURCE_EXHAUSTED (8) Trailers-Only, others 431 — not a reset, which gRPC clients see as
 * UNAVAILABLE and retry for ever.
 */
export function answerHeadersTooLarge(stream: http2.ServerHttp2Stream, request: http2.OutgoingHttpHeaders): void {
  const message =
    'the request headers are too large to forward over HTTP/2 (at most 64 KiB per header block); send large values in the body';
  if (!canRespond(stream)) {
    resetIfOpen(stream);
    return;
  }
  if (String(request['content-type'] ?? '').startsWith('application/grpc')) {
    stream.respond(
      {
        ':status': 200,
        'content-type': 'application/grpc',
        'grpc-status': '8',
        // Printable ASCII without '%': a valid grpc-message as it is.
        'grpc-message': message,
        'x-sidecar-error': ErrorCodes.HEADERS_TOO_LARGE,
      },
      { endStream: true },
    );
    return;
  }
  answerStream(stream, 431, ErrorCodes.HEADERS_TOO_LARGE, message);
}

/** The headers to send on: without connection-specific ones and those `drop` names; `extra` ([name, value, …]) set last. */
export function forwardHeaders(
  headers: http2.IncomingHttpHeaders,
  drop?: (name: string) => boolean,
  extra?: readonly string[],
): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || CONNECTION_HEADERS.has(name) || drop?.(name)) continue;
    out[name] = value;
  }
  // gRPC sends "te: trailers", the one TE value HTTP/2 allows; keep it.
  if (headers.te === 'trailers') out.te = 'trailers';
  if (extra) for (let i = 0; i < extra.length; i += 2) out[extra[i] as string] = extra[i + 1];
  return out;
}

/**
 * How much of a request body is kept until the upstream answers, to send it again when the
 * upstream refuses the stream unprocessed. A gRPC call's request usually fits; a larger body is
 * not kept, and its call fails (502) if refused.
 */
const REPLAY_LIMIT = 64 * 1024;
/**
 * Body bytes kept for that across every stream of the process: streams whose answer comes late (a
 * client-streaming call) must not hold 64 KiB each without bound. Past it, new bodies are not kept.
 */
const REPLAY_BUDGET = 8 * 1024 * 1024;
let replayHeld = 0;

/** Request body bytes kept for a possible second send, now (for tests: back to 0 once calls end). */
export function replayBytesHeld(): number {
  return replayHeld;
}

/**
 * Relays one incoming stream to the session `session()` returns: its response, body and trailers.
 *
 * A stream the upstream refused unprocessed (REFUSED_STREAM: it arrived after the GOAWAY of the
 * upstream's idle close or drain, above its last stream id) is sent once more on a new session, as
 * gRPC clients do themselves (RFC 9113 §8.7): an idle close of the other sidecar racing a new call
 * failed that call (502, UNAVAILABLE).
 */
export function relayStream(
  incoming: http2.ServerHttp2Stream,
  outgoing: http2.OutgoingHttpHeaders,
  session: () => http2.ClientHttp2Session,
  /** `accepted`: the upstream's server had accepted the connection (sessionAccepted). */
  onFailure: (err: Error & { code?: string }, accepted: boolean) => RelayFailure,
  /** Count the DATA bytes each way (relayedBytes): the listener's access log is on. */
  countBytes = false,
): void {
  let upstream: http2.ClientHttp2Stream | undefined;
  let upstreamSession: http2.ClientHttp2Session | undefined;
  let failed = false;
  // Reported (onFailure) only while the client can still be told; the rest of its request is
  // read and dropped, so a large body does not wait on a window nobody opens.
  const fail = (err: Error & { code?: string }, answer?: () => void) => {
    failed = true;
    if (upstream) incoming.unpipe(upstream);
    if (!incoming.readableEnded && !incoming.closed) incoming.resume();
    if (!canRespond(incoming)) {
      resetIfOpen(incoming);
      return;
    }
    if (answer) return answer();
    const failure = onFailure(err, sessionAccepted(upstreamSession));
    answerStream(incoming, failure.status, failure.code, failure.message);
  };
  let headersTooLarge = false;
  let responded = false;
  const bytes = countBytes ? countRelayedBytes(incoming) : undefined;
  // The body sent so far, while it may have to be sent again (no response yet, within REPLAY_LIMIT).
  let replay: Buffer[] | undefined = [];
  let replayBytes = 0;
  const dropReplay = () => {
    if (!replay) return;
    replayHeld -= replayBytes;
    replay = undefined;
  };
  let retried = false;
  let answered = false;
  let trailers: http2.OutgoingHttpHeaders = {};
  // The upstream may answer in full before the request is all sent, and stop reading it (RFC 9113
  // §8.1: a gRPC server refusing a call does). Once the client has that whole answer, read and drop
  // the rest of its request, as http mode does: left unread, it waits on a flow-control window
  // that never opens, and the call never ends. (Not RST_STREAM NO_ERROR, what the app itself sends:
  // Node's client never ends a stream reset that way while it still has a write pending.)
  const dropRestOnceAnswered = () => {
    if (!answered || !upstream?.closed || incoming.readableEnded || incoming.closed) return;
    incoming.unpipe(upstream);
    incoming.resume();
  };

  /**
   * Starts the client's response with the upstream's headers. respond() throws on headers Node will
   * not send (an invalid status, a connection-specific header): that upstream answer ends as a 502,
   * never as an exception out of an event handler, which would end the process.
   */
  const respondOrFail = (
    up: http2.ClientHttp2Stream,
    responseHeaders: http2.IncomingHttpHeaders,
    options: http2.ServerStreamResponseOptions,
  ): boolean => {
    const invalid = relayableStatus(responseHeaders)
      ? undefined
      : `the upstream answered :status ${String(responseHeaders[':status'])}, outside 200–599`;
    if (!invalid) {
      try {
        incoming.respond(forwardHeaders(responseHeaders), options);
        return true;
      } catch (err) {
        return respondFailed(up, err as Error & { code?: string });
      }
    }
    return respondFailed(up, Object.assign(new Error(invalid), { code: 'ERR_HTTP2_STATUS_INVALID' }));
  };
  const respondFailed = (up: http2.ClientHttp2Stream, err: Error & { code?: string }): false => {
    up.close(NGHTTP2_PROTOCOL_ERROR);
    fail(err);
    return false;
  };

  const open = (): http2.ClientHttp2Stream | undefined => {
    let up: http2.ClientHttp2Stream;
    try {
      // Throws when the session is closing or destroyed (a GOAWAY in the same tick, a dead target).
      upstreamSession = session();
      watchGoaway(upstreamSession);
      up = upstreamSession.request(outgoing);
    } catch (err) {
      fail(err as Error & { code?: string });
      return undefined;
    }
    upstream = up;
    const own = upstreamSession;
    // The header block could not be sent (past Node's maxSendHeaderBlockLength, 64 KiB, or the
    // peer's header list limit): the stream is then refused, which is no reason to send it again.
    up.on('frameError', (type: number) => {
      if (type === HEADERS_FRAME) headersTooLarge = true;
    });
    up.on('error', (err: Error & { code?: string }) => {
      // After a failure already answered (respondFailed closes the stream itself), nothing to add.
      if (up !== upstream || failed) return;
      if (headersTooLarge) {
        fail(err, () => answerHeadersTooLarge(incoming, outgoing));
        return;
      }
      if (replay && !retried && canRespond(incoming) && refusedUnprocessed(up, own)) {
        retried = true;
        sendAgain(up, replay);
        return;
      }
      fail(err);
    });
    up.on('response', (responseHeaders, flags) => {
      responded = true;
      dropReplay();
      if (!canRespond(incoming)) {
        up.close(NGHTTP2_CANCEL);
        return;
      }
      if (flags & NGHTTP2_FLAG_END_STREAM) {
        // Trailers-Only (a gRPC call failed before any message, a 204): one HEADERS frame that ends
        // the stream, relayed as one. Answered with waitForTrailers it became HEADERS, an empty DATA
        // that ended the stream and no trailers, and gRPC clients saw INTERNAL ("server closed the
        // stream without sending trailers") instead of the status, message and details sent.
        if (!respondOrFail(up, responseHeaders, { endStream: true })) return;
        up.resume();
        answered = true;
        dropRestOnceAnswered();
        return;
      }
      if (!respondOrFail(up, responseHeaders, { waitForTrailers: true })) return;
      streamActive(incoming);
      up.pipe(incoming);
      up.on('data', (chunk: Buffer) => {
        streamActive(incoming);
        youngGarbage.relayed(chunk.length);
        if (bytes) bytes.sent += chunk.length;
      });
    });
    up.on('trailers', (received) => {
      trailers = {};
      for (const [name, value] of Object.entries(received)) if (typeof value === 'string' || Array.isArray(value)) trailers[name] = value;
    });
    up.on('close', () => {
      dropRestOnceAnswered();
      if (up !== upstream || responded || failed) return;
      // Closed before an answer without an error: the upstream cancelled the stream, or its
      // connection ended (a peer that crashed: its FIN). Left alone, the client waited for
      // idleTimeout; with a reset it was reported as a failed handshake.
      const ended = own?.closed === true || own?.destroyed === true;
      fail(
        ended
          ? Object.assign(new Error('the connection ended before an answer'), { code: 'EOF' })
          : Object.assign(new Error('the stream was cancelled before an answer'), { code: 'ERR_HTTP2_STREAM_CANCEL' }),
      );
    });
    return up;
  };

  /** The refused stream's body so far goes to a new stream, and the rest follows it there. */
  const sendAgain = (refused: http2.ClientHttp2Stream, sent: readonly Buffer[]) => {
    incoming.unpipe(refused);
    const next = open();
    if (!next) return;
    for (const chunk of sent) next.write(chunk);
    // Sent once more, never a third time: nothing more to keep.
    dropReplay();
    if (incoming.readableEnded) next.end();
    else incoming.pipe(next);
  };

  const first = open();
  if (!first) return;
  incoming.on('close', () => {
    dropReplay();
    if (upstream && !upstream.closed && !upstream.destroyed) upstream.close(NGHTTP2_CANCEL);
  });
  incoming.pipe(first);
  // After pipe(): a 'data' listener added then leaves pipe's flow control (pause on backpressure)
  // as it is. Each DATA frame arrives as a fresh buffer: counted for the young collection.
  incoming.on('data', (chunk: Buffer) => {
    streamActive(incoming);
    youngGarbage.relayed(chunk.length);
    if (bytes) bytes.received += chunk.length;
    if (!replay) return;
    if (replayBytes + chunk.length > REPLAY_LIMIT || replayHeld + chunk.length > REPLAY_BUDGET) {
      dropReplay();
      return;
    }
    replay.push(chunk);
    replayBytes += chunk.length;
    replayHeld += chunk.length;
  });
  incoming.on('wantTrailers', () => {
    if (incoming.destroyed || incoming.closed) return;
    try {
      incoming.sendTrailers(trailers);
    } catch {
      resetIfOpen(incoming);
      return;
    }
    answered = true;
    dropRestOnceAnswered();
  });
}

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
    // wrong: not counted or audited as a protocol error, which the README calls abuse.
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
