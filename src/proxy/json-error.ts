/** The JSON bodies the sidecar answers with when it, not the app, ends a request. */
import type { ServerResponse } from 'node:http';
import type { ErrorCode } from '../errors.js';

/**
 * An answer the sidecar makes instead of the app's or upstream's: the HTTP status, the stable
 * code, and the one-line message. Refusals (admission), failed relays (h2) and failed upstreams
 * (without a status: the mode picks it) all have this shape.
 */
export interface ErrorAnswer<S extends number = number> {
  readonly status: S;
  readonly code: ErrorCode;
  readonly message: string;
}

/** The body every sidecar-made error response carries, in every mode. */
export function jsonErrorBody(code: ErrorCode, message: string): string {
  return JSON.stringify({ error: { code, message } });
}

export function sendJsonError(res: ServerResponse, status: number, code: ErrorCode, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = jsonErrorBody(code, message);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-sidecar-error': code,
  });
  res.end(body);
}
