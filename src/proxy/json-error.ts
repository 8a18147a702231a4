/** The JSON bodies the sidecar answers with when it, not the app, ends a request. */
import type { ServerResponse } from 'node:http';
import type { ErrorCode } from '../errors.js';

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
