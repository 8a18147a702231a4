/**
 * Byte pipes for tcp mode, with half-close: when one side ends its writes, the other side's writes
 * carry on until it ends too (databases and request/response protocols rely on this). An error on
 * either side tears both down.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { HostPort } from '../../config/parse.js';

/**
 * Reads from a dialled socket land in a buffer this size, reused read after read (see readsInto),
 * once the connection has shown it carries bulk: a read filled its first, small buffer. Large, for
 * fewer and larger reads and writes in a bulk transfer: in `npm run bench`, 1 MiB bodies over tcp
 * mode, 64 KB → 256 KB took CPU per request down a quarter and MB/s up a quarter (512 KB and 1 MB
 * gained nothing more; a buffer that grew and shrank with the traffic did worse).
 */
const READ_BUFFER_BYTES = 256 * 1024;

/**
 * A connection starts with a read buffer this size: one TLS chunk. Most connections of a
 * request/response protocol never fill it. 256 KB each from the start made every short connection
 * cost 256 KB of external memory, which V8 answers with full collections: in `npm run bench`,
 * `Connection: close` (a TLS connection per request), this first buffer took a tcp pair from ~1,100
 * to ~1,450 connections/s at ~25% less CPU each, and V8's count of live read buffers per side from
 * 11–23 MB to ~9 MB.
 */
const FIRST_READ_BUFFER_BYTES = 16 * 1024;

/**
 * TLS hands what it decrypts to `onread` in chunks of at most this (Node's TLSWrap reads OpenSSL
 * 16 KB at a time): a 1 MiB response is 64 reads.
 */
const TLS_CHUNK_BYTES = 16 * 1024;
/**
 * Full TLS chunks are written to the peer in batches of up to this many bytes (see readsInto). In
 * `npm run bench`, 1 MiB bodies over tcp mode: +15–20% MB/s at the same CPU per request; 256 KB
 * batches did no better and kept 5 MB more resident per side (each connection's buffer filled).
 */
const BATCH_BYTES = 64 * 1024;

/** Dials `target` and pipes it with `peer` both ways (see pipeDialled). */
export function dialAndPipe(peer: Duplex, target: HostPort): net.Socket {
  return pipeDialled(peer, (onread) => net.connect({ host: target.host, port: target.port, allowHalfOpen: true, onread }));
}

/**
 * Pipes `peer` both ways with the socket `dial` opens: `peer`'s bytes through pipe(), the dialled
 * socket's reads straight to `peer` through the `onread` options passed to `dial` (net.connect and
 * tls.connect both take them; tls.connect reads the decrypted bytes into the buffer).
 */
export function pipeDialled<S extends net.Socket>(peer: Duplex, dial: (onread: net.OnReadOpts) => S): S {
  const reads = readsInto(peer, {
    pause: () => dialled.pause(),
    resume: () => dialled.resume(),
  });
  const dialled = dial(reads.onread);
  dialled.on('end', () => {
    reads.flush();
    peer.end();
  });
  peer.pipe(dialled);
  tieLifetimes(peer, dialled);
  return dialled;
}

/**
 * `onread` options that write each read to `peer`, into one buffer reused read after read instead
 * of a new 64 KB buffer per read: a 1 MiB response is 16+ reads, and the garbage they leave (large
 * external buffers behind small objects) drives full collections and RSS (npm run bench, 1 MiB
 * bodies). A region of the buffer is reused only when nothing can refer to it any more, which
 * depends on the peer:
 * - a TLS peer encrypts the bytes inside write() when nothing is queued before them (OpenSSL
 *   copies what it cannot encrypt yet), so only bytes queued behind earlier writes refer to it;
 * - a TCP peer hands libuv a pointer, so any write still pending after write() may refer to it.
 * When the buffer may be referred to, the next read gets a fresh one and the old one is left to
 * the GC. A read that fills the buffer moves the connection to the large buffer for good.
 *
 * Full TLS chunks (a bulk transfer, decrypted 16 KB at a time) are not written one by one: they
 * land one after another in the buffer and go out as one write when a shorter read ends the burst,
 * when a batch (BATCH_BYTES) is full, or once this turn of the event loop has read what there was
 * (setImmediate) — 16 writes per MiB instead of 64, each a syscall on the app's side. A short read
 * (small messages, the end of a burst) is written at once, so nothing waits on a batch.
 */
function readsInto(peer: Duplex, dialled: { pause(): void; resume(): void }): { onread: net.OnReadOpts; flush: () => void } {
  const encryptsOnWrite = peer instanceof tls.TLSSocket;
  let buffer = Buffer.allocUnsafe(FIRST_READ_BUFFER_BYTES);
  let size = FIRST_READ_BUFFER_BYTES;
  /** buffer[written, filled) holds read bytes not yet written to peer; the next read lands at `filled`. */
  let written = 0;
  let filled = 0;
  let held = false;
  let flushQueued = false;

  /** Writes what is waiting; false when the peer asks to wait for 'drain'. */
  const writePending = (): boolean => {
    if (peer.destroyed) written = filled; // nobody to write to: the pipe is being torn down
    if (written === filled) return true;
    const queuedBefore = peer.writableLength > 0;
    const more = peer.write(buffer.subarray(written, filled));
    written = filled;
    if (queuedBefore || (!encryptsOnWrite && peer.writableLength > 0)) held = true;
    return more;
  };
  const flush = (): void => {
    flushQueued = false;
    if (writePending()) return;
    dialled.pause();
    peer.once('drain', dialled.resume);
  };

  const onread: net.OnReadOpts = {
    buffer: () => {
      if (written === filled) {
        // Nothing waiting: start over at the beginning, in a fresh buffer if a write may refer to
        // this one or the connection has moved to the large size.
        if (held || buffer.length < size) {
          buffer = Buffer.allocUnsafe(size);
          held = false;
        }
        written = filled = 0;
      }
      return buffer.subarray(filled);
    },
    callback(bytes: number) {
      filled += bytes;
      if (filled === buffer.length) size = READ_BUFFER_BYTES;
      // A burst batches only while the buffer has room for the next chunk (never in the first one).
      const burst = bytes === TLS_CHUNK_BYTES && Math.min(BATCH_BYTES, buffer.length) - filled >= TLS_CHUNK_BYTES;
      if (burst) {
        if (!flushQueued) {
          flushQueued = true;
          setImmediate(flush);
        }
        return true;
      }
      if (writePending()) return true;
      peer.once('drain', dialled.resume);
      return false; // pauses reads until the peer drains
    },
  };
  return { onread, flush };
}

function tieLifetimes(a: Duplex, b: Duplex): void {
  const destroyBoth = () => {
    a.destroy();
    b.destroy();
  };
  a.on('error', destroyBoth);
  b.on('error', destroyBoth);
  closeAfter(a, b);
  closeAfter(b, a);
}

/**
 * When `closed` closes, `other` goes too — but if `other` was already told to end (the closed side
 * sent its last byte and end()ed it), only once what it still holds is written: destroying it at
 * once would drop the tail of a response queued behind a slow reader.
 */
function closeAfter(closed: Duplex, other: Duplex): void {
  closed.on('close', () => {
    if (other.writableEnded && !other.writableFinished && !other.destroyed) other.once('finish', () => other.destroy());
    else other.destroy();
  });
}
