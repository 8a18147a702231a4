/**
 * Hop-by-hop headers belong to one connection, not to the request. Copying them through breaks
 * pooling both ways: a client's `Connection: close` would tear down a pooled upstream connection,
 * and an upstream's `Connection: keep-alive` would promise the client a connection the server is
 * about to close. We drop them in both directions and let each side's HTTP stack frame its own
 * connection (Transfer-Encoding included: bodies are re-framed on each side). Upgrades (WebSocket)
 * go through a different path and keep theirs.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * The header names (lower case) not to forward, given the message's Connection header: the fixed
 * ones plus any it lists (RFC 9110 §7.6.1). The common values share one set, so a plain request
 * allocates nothing here.
 */
export function hopByHop(connection: string | string[] | undefined): ReadonlySet<string> {
  const value = Array.isArray(connection) ? connection.join(',') : connection;
  if (value === undefined || value === 'keep-alive' || value === 'close') return HOP_BY_HOP;
  const names = new Set(HOP_BY_HOP);
  for (const name of value.split(',')) {
    const trimmed = name.trim().toLowerCase();
    // Host is end to end: a client must not make the app see our pool's address instead.
    if (trimmed && trimmed !== 'host') names.add(trimmed);
  }
  return names;
}
