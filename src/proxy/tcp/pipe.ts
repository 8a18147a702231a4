/**
 * Byte pipes for tcp mode, with half-close: when one side ends its writes, the other side's writes
 * carry on until it ends too (databases and request/response protocols rely on this). An error on
 * either side tears both down.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { HostPort } from '../../config/parse.js';

/** Reads from a dialled socket land here, reused read after read (see dialAndPipe). */
const READ_BUFFER_BYTES = 64 * 1024;

export function pipeBothWays(a: Duplex, b: Duplex): void {
  a.pipe(b);
  b.pipe(a);
  tieLifetimes(a, b);
}

/**
 * Dials `target` and pipes it with `peer` both ways, like pipeBothWays, but reads from the dialled
 * socket land in one reused buffer (net's `onread`) instead of a new 64 KB buffer per read. That is
 * safe because `peer` is a TLS socket: OpenSSL encrypts the bytes inside write() when nothing is
 * queued before them, so nothing refers to the buffer once write() returns; bytes that would wait
 * in the socket's queue are copied first. It spares an allocation per read and the garbage
 * collection that follows (in `npm run bench`, 1 MiB responses: RSS of the inbound tcp sidecar
 * 90 → 63 MB).
 */
export function dialAndPipe(peer: Duplex, target: HostPort): net.Socket {
  const dialled: net.Socket = net.connect({
    host: target.host,
    port: target.port,
    allowHalfOpen: true,
    onread: {
      buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
      callback(bytes: number, buffer: Uint8Array) {
        const chunk = Buffer.from(buffer.buffer, buffer.byteOffset, bytes);
        if (peer.write(peer.writableLength === 0 ? chunk : Buffer.from(chunk))) return true;
        peer.once('drain', () => dialled.resume());
        return false; // pauses reads until the peer drains
      },
    },
  });
  dialled.on('end', () => peer.end());
  peer.pipe(dialled);
  tieLifetimes(peer, dialled);
  return dialled;
}

function tieLifetimes(a: Duplex, b: Duplex): void {
  const destroyBoth = () => {
    a.destroy();
    b.destroy();
  };
  a.on('error', destroyBoth);
  b.on('error', destroyBoth);
  a.on('close', () => b.destroy());
  b.on('close', () => a.destroy());
}
