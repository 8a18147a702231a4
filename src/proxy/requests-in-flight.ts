/**
 * Requests in flight per inbound connection, so the connection gate can tell an idle connection
 * (no request in flight: closing it loses nothing the client cannot retry) from a busy one.
 * Keyed by the TCP socket under the TLS one: http requests see the TLS socket, h2 streams a proxy
 * of it (Node's session.socket), and both reach the same TCP socket through `_parent` (see
 * connection-gate.ts rawSocketOf).
 */
import type { Socket } from 'node:net';

const counts = new WeakMap<object, number>();

function keyOf(socket: Socket): object {
  return (socket as Socket & { _parent?: Socket })._parent ?? socket;
}

/** Counts a request on `socket` until `exchange` (a response, a stream, an upgraded socket) closes. */
export function requestInFlight(socket: Socket, exchange: { once(event: 'close', listener: () => void): unknown }): void {
  const key = keyOf(socket);
  counts.set(key, (counts.get(key) ?? 0) + 1);
  exchange.once('close', () => {
    const left = (counts.get(key) ?? 1) - 1;
    if (left > 0) counts.set(key, left);
    else counts.delete(key);
  });
}

/** Whether a request is in flight on the connection whose TCP socket is `raw` (or on `socket`). */
export function hasRequestInFlight(raw: object): boolean {
  return (counts.get(raw) ?? 0) > 0;
}
