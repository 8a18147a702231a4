/** The JSON bodies the sidecar answers with when it, not the app, ends a request. */
import type { ServerResponse } from 'node:http';
import type { ErrorCode } from '../errors.js';

export function sendJsonError(res: ServerResponse, status: number, code: ErrorCode, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-sidecar-error': code,
  });
  res.end(body);
}
