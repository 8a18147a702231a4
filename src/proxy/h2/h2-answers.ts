/**
 * What the h2 listeners send their own clients: a JSON error (or a reset, once a response has
 * begun), a clear refusal of a header block too large to forward, and the headers passed on.
 * respond() throws on a stream the peer already closed, so every answer checks first.
 */
import http2 from 'node:http2';
import { type ErrorCode, ErrorCodes } from '../../errors.js';
import { HOP_BY_HOP } from '../hop-by-hop.js';
import { jsonErrorBody } from '../json-error.js';

const { NGHTTP2_INTERNAL_ERROR } = http2.constants;

/**
 * Headers that describe one hop of the connection, never forwarded: HTTP/1's hop-by-hop set, which
 * Node's HTTP/2 refuses to send, except `trailer`, which announces gRPC's trailers.
 */
const CONNECTION_HEADERS = new Set([...[...HOP_BY_HOP].filter((name) => name !== 'trailer'), 'http2-settings']);

/** Whether a response can still be started on the stream (respond() throws otherwise). */
export function canRespond(stream: http2.ServerHttp2Stream): boolean {
  return !stream.destroyed && !stream.closed && !stream.headersSent;
}

/** Resets a stream that is still open (its response, if any, is incomplete). */
export function resetIfOpen(stream: http2.ServerHttp2Stream): void {
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
