/**
 * DATA bytes relayed on each incoming h2 stream, for the access log. Its own module, without a
 * value import of `node:http2`, so the listener metrics that read it do not load HTTP/2 into tcp
 * mode (http2 and its ten internal modules; measured −0.5–0.9 MB idle RSS in tcp mode). http mode
 * loads http2 anyway: undici requires it when it loads.
 */
import type http2 from 'node:http2';

export interface RelayedBytes {
  received: number;
  sent: number;
}

const relayed = new WeakMap<http2.Http2Stream, RelayedBytes>();

/** Starts counting for `stream` (only where the access log is on) and returns the counter to add to. */
export function countRelayedBytes(stream: http2.Http2Stream): RelayedBytes {
  const bytes = { received: 0, sent: 0 };
  relayed.set(stream, bytes);
  return bytes;
}

export function relayedBytes(stream: http2.Http2Stream): RelayedBytes {
  return relayed.get(stream) ?? { received: 0, sent: 0 };
}
