/**
 * Hop-by-hop headers belong to one connection, not to the request. http-proxy copies them through,
 * which breaks pooling both ways: a client's `Connection: close` would tear down a pooled upstream
 * connection, and an upstream's `Connection: keep-alive` would promise the client a connection the
 * server is about to close. We drop them in both directions and let each side's Node HTTP stack
 * decide for its own connection. Upgrades (WebSocket) go through a different path and keep theirs.
 */
import type { IncomingHttpHeaders } from 'node:http';

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade'];

/** Names listed in a Connection header are hop-by-hop too (RFC 9110 §7.6.1). */
function namedInConnection(headers: IncomingHttpHeaders): string[] {
  const value = headers.connection;
  return typeof value === 'string'
    ? value
        .split(',')
        .map((s) => s.trim().toLowerCase())
        .filter(Boolean)
    : [];
}

export function hopByHopNames(headers: IncomingHttpHeaders): string[] {
  return [...HOP_BY_HOP, ...namedInConnection(headers)];
}

export function stripHopByHop(headers: IncomingHttpHeaders): void {
  for (const name of hopByHopNames(headers)) delete headers[name];
}
