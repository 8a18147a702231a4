/**
 * What the access log says a request was for: the path, never the query (tokens and API keys
 * travel in URLs, and logs are kept and shipped far more widely than the app's traffic), and on
 * inbound listeners the normalized path that was authorized and forwarded, not the raw target.
 */
import type http2 from 'node:http2';

/** Paths longer than this are cut in the access log (a request head may hold 16 KiB of path). */
const MAX_LOGGED_PATH = 2048;

/** The path of a request target, without its query, cut to a loggable length. */
export function loggedPath(target: string): string {
  const query = target.indexOf('?');
  return (query === -1 ? target : target.slice(0, query)).slice(0, MAX_LOGGED_PATH);
}

/** h2 streams admitted on an inbound listener: the path they were forwarded with (http mode rewrites req.url instead). */
const forwarded = new WeakMap<http2.Http2Stream, string>();

export function rememberForwardedPath(stream: http2.Http2Stream, target: string): void {
  forwarded.set(stream, loggedPath(target));
}

/** The path to log for an h2 stream: as forwarded when it was admitted, else as the client sent it. */
export function streamPath(stream: http2.Http2Stream, rawPath: string): string {
  return forwarded.get(stream) ?? loggedPath(rawPath);
}
