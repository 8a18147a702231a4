/**
 * Requests Node's HTTP parser refuses before they become requests: malformed (400), headers too
 * large (431), too slow (408). Node answers them itself but says nothing; here each is answered
 * the same way, counted, and logged (rate-limited), so a scanner or a broken client is visible.
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { ErrorCodes } from '../errors.js';
import { sendJsonError } from './json-error.js';
import type { ListenerDeps } from './listener-types.js';

function statusFor(code: string | undefined): 400 | 408 | 431 {
  if (code === 'HPE_HEADER_OVERFLOW') return 431;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  return 400;
}

const REASONS = { 400: 'malformed', 408: 'request_timeout', 431: 'headers_too_large' } as const;
const PHRASES = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' } as const;

/**
 * `refused` records a request answered here (metrics, access log); a request that had already
 * started is recorded when its response closes instead.
 */
export function answerClientErrors(
  server: http.Server,
  listener: string,
  deps: Pick<ListenerDeps, 'metrics' | 'audit'>,
  refused: (status: number, socket: Duplex & { remoteAddress?: string }) => void,
): void {
  server.on('clientError', (err: Error & { code?: string }, socket: Duplex & { remoteAddress?: string; _httpMessage?: unknown }) => {
    // A client that reset or closed mid-request: nothing to answer, nothing it did wrong — also one
    // that ended its side mid-body after its request was answered (an undici pool resets its
    // connection when the app answers an upload early): a 400 then would be a second, unasked-for
    // answer. A failed TLS handshake reaches https servers here too; it is reported as
    // tlsClientError, and an HTTP answer could not be written on a connection without TLS anyway.
    const tlsFailure = /^ERR_(TLS|SSL)_/.test(err.code ?? '') || 'library' in err || err.message === 'socket hang up';
    const endedWithNothingToAnswer = err.code === 'HPE_INVALID_EOF_STATE' && !socket._httpMessage;
    if (err.code === 'ECONNRESET' || endedWithNothingToAnswer || tlsFailure || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = statusFor(err.code);
    deps.metrics.badRequests.inc({ listener, reason: REASONS[status] });
    deps.audit.warn(
      { event: 'bad_request', listener, remoteAddress: socket.remoteAddress, reason: REASONS[status], detail: err.code ?? err.message },
      `refused a request (${status})`,
    );
    // The parser fails mid-request (a body with an invalid Transfer-Encoding): the request was
    // already being forwarded; answer it here unless a response has started, then close.
    const pending = socket._httpMessage as http.ServerResponse | undefined;
    if (pending) {
      if (pending.headersSent) socket.destroy();
      else {
        pending.shouldKeepAlive = false;
        sendJsonError(pending, status, ErrorCodes.BAD_REQUEST, `the request could not be parsed (${err.code ?? err.message})`);
      }
      return;
    }
    refused(status, socket);
    socket.end(`HTTP/1.1 ${status} ${PHRASES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  });
}
