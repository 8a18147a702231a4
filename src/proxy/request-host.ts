/**
 * Which host a request is for must have one answer. Node's HTTP/1.1 parser keeps the first of two
 * Host headers and drops the rest, and HTTP/2 carries both `:authority` and, from some clients, a
 * `host` header: the sidecar, the app and whatever sits between them could each read a different
 * one (a virtual host chosen on one, a rule or a log written on the other). Such requests are
 * refused with a 400, as RFC 9112 §3.2 and RFC 9113 §8.3.1 have servers do.
 */
import type http2 from 'node:http2';

/** Why an HTTP/1.1 request's Host is ambiguous (more than one Host header), or undefined. */
export function http1HostProblem(rawHeaders: readonly string[]): string | undefined {
  let hosts = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++;
  }
  return hosts > 1 ? 'the request has more than one Host header (RFC 9112 §3.2)' : undefined;
}

/**
 * Why an HTTP/2 request's authority is ambiguous (a `host` header naming another authority than
 * `:authority`), or undefined. A `host` that agrees is harmless; the caller forwards `:authority`
 * alone either way.
 */
export function h2HostProblem(headers: http2.IncomingHttpHeaders): string | undefined {
  const host = headers.host;
  const authority = headers[':authority'];
  if (host === undefined || authority === undefined) return undefined;
  return String(host).toLowerCase() === authority.toLowerCase()
    ? undefined
    : 'the host header names another authority than :authority (RFC 9113 §8.3.1)';
}
