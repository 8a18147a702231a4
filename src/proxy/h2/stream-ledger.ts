/**
 * What an h2 listener's access log needs of each stream that only its relay knows: the DATA bytes
 * relayed each way, and (inbound) the path it was forwarded with after normalization. One ledger
 * per listener, made by the listener and handed both to its relay, which writes, and to its
 * metrics, which read at the stream's close — instead of module-wide tables the two reached into.
 * Made only when the access log is on. No value import of `node:http2`, so the metrics that read
 * it do not load HTTP/2 into tcp mode (http2 and its ten internal modules; −0.5–0.9 MB idle RSS).
 */
import type http2 from 'node:http2';
import { loggedPath } from '../forwarded-path.js';

export interface StreamEntry {
  received: number;
  sent: number;
  /** As forwarded (inbound, once admitted), in the form logs carry it (loggedPath). */
  path: string | undefined;
}

export class StreamLedger {
  readonly #entries = new WeakMap<http2.Http2Stream, StreamEntry>();

  /** The entry of `stream`, made at first sight (the relay's counters, the admitted path). */
  entry(stream: http2.Http2Stream): StreamEntry {
    let entry = this.#entries.get(stream);
    if (!entry) {
      entry = { received: 0, sent: 0, path: undefined };
      this.#entries.set(stream, entry);
    }
    return entry;
  }

  /** Records the path `stream` was forwarded with. */
  forwardedWith(stream: http2.Http2Stream, target: string): void {
    this.entry(stream).path = loggedPath(target);
  }

  /** What the access log records of `stream` at its close: bytes each way, and the path as forwarded or else as sent. */
  read(stream: http2.Http2Stream, rawPath: string): { received: number; sent: number; path: string } {
    const entry = this.#entries.get(stream);
    return { received: entry?.received ?? 0, sent: entry?.sent ?? 0, path: entry?.path ?? loggedPath(rawPath) };
  }
}
