/**
 * The h2 stream relay: carries one incoming stream's headers, body and trailers — what gRPC needs —
 * to an upstream session and its answer back, sending a stream the upstream refused unprocessed
 * once more.
 *
 * No peer may end the process: every stream has an error path, and every call that throws on a
 * stream the peer already closed (respond, sendTrailers, request on a closing session) checks first
 * and is guarded. A peer reset, a dead app or a cancelled call ends one stream.
 */
import http2 from 'node:http2';
import type { ErrorAnswer } from '../json-error.js';
import { IGNORE_BODY } from '../listener-types.js';
import { answerHeadersTooLarge, answerStream, canRespond, forwardHeaders, resetIfOpen } from './h2-answers.js';
import { refusedUnprocessed, sessionAccepted } from './h2-session.js';
import { streamActive } from './stream-idle.js';
import type { StreamEntry } from './stream-ledger.js';

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM, NGHTTP2_FRAME_SIZE_ERROR, NGHTTP2_PROTOCOL_ERROR } = http2.constants;

/** The frame type of HEADERS: a frameError on it means the header block could not be sent. */
const HEADERS_FRAME = 0x1;

/**
 * A response status the relay can give on: HTTP/2 allows any three digits, Node's server only
 * 200–599 (1xx never reach 'response'); respond() throws on the rest.
 */
function relayableStatus(headers: http2.IncomingHttpHeaders): boolean {
  const status = Number(headers[':status']);
  return Number.isInteger(status) && status >= 200 && status <= 599;
}

/** What the client of a stream that could not be relayed is answered. */
export type RelayFailure = ErrorAnswer;

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
  options: {
    /** Where the DATA bytes each way are counted (the listener's StreamLedger): its access log is on. */
    readonly bytes?: StreamEntry | undefined;
    /** Told of each DATA chunk relayed, either way (ListenerDeps.bodyRelayed). */
    readonly bodyRelayed?: ((bytes: number) => void) | undefined;
  } = {},
): void {
  const { bytes, bodyRelayed = IGNORE_BODY } = options;
  let upstream: http2.ClientHttp2Stream | undefined;
  let upstreamSession: http2.ClientHttp2Session | undefined;
  let failed = false;
  // Reported (onFailure) only while the client can still be told; the rest of its request is
  // read and dropped, so a large body does not wait on a window nobody opens.
  const fail = (err: Error & { code?: string }, answer?: () => void) => {
    failed = true;
    // Nothing will be sent again: the rest of the body must not fill the shared replay budget.
    dropReplay();
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
    if (!relayableStatus(responseHeaders)) {
      return respondFailed(
        up,
        'ERR_HTTP2_STATUS_INVALID',
        `the upstream answered :status ${String(responseHeaders[':status'])}, outside 200–599`,
      );
    }
    try {
      incoming.respond(forwardHeaders(responseHeaders), options);
      return true;
    } catch (err) {
      // Whatever else Node refused (a header value, a pseudo-header), it is the upstream's answer.
      const refused = err as Error & { code?: string };
      return respondFailed(
        up,
        'ERR_HTTP2_INVALID_RESPONSE',
        `the upstream's response headers cannot be relayed (${refused.code ?? refused.message})`,
      );
    }
  };
  const respondFailed = (up: http2.ClientHttp2Stream, code: string, message: string): false => {
    up.close(NGHTTP2_PROTOCOL_ERROR);
    fail(Object.assign(new Error(message), { code }));
    return false;
  };

  const open = (): http2.ClientHttp2Stream | undefined => {
    let up: http2.ClientHttp2Stream;
    try {
      // Throws when the session is closing or destroyed (a GOAWAY in the same tick, a dead target).
      upstreamSession = session();
      up = upstreamSession.request(outgoing);
    } catch (err) {
      fail(err as Error & { code?: string });
      return undefined;
    }
    upstream = up;
    const own = upstreamSession;
    // The header block could not be sent (past Node's maxSendHeaderBlockLength, 64 KiB, or the
    // peer's header list limit): the stream is then refused, which is no reason to send it again.
    // Only a size error says that: a HEADERS frame a GOAWAY arriving with it kept from being sent
    // (code 2) made a refused call a 431, which gRPC clients never retry.
    up.on('frameError', (type: number, code: number) => {
      if (type === HEADERS_FRAME && code === NGHTTP2_FRAME_SIZE_ERROR) headersTooLarge = true;
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
        bodyRelayed(chunk.length);
        if (bytes) bytes.sent += chunk.length;
      });
    });
    // Without connection-specific names, which sendTrailers() refuses: one such trailer threw and
    // the client lost every trailer (grpc-status included) to a reset.
    up.on('trailers', (received) => {
      trailers = forwardHeaders(received);
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
    bodyRelayed(chunk.length);
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
