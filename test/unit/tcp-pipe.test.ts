/**
 * tcp mode's reused read buffer (src/proxy/tcp/pipe.ts): the dialled socket's reads land in one
 * buffer that is reused only when nothing refers to it. The peer here completes its writes late and
 * copies each chunk only then, as a socket whose kernel buffer is full hands libuv a pointer and
 * sends the bytes later: a buffer reused while a write still refers to it shows as corruption.
 * Over real sockets on loopback, plain and TLS (tls.connect reads the decrypted bytes into it). And
 * the dialled side closing must not cut off what the peer still has to write.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import fc from 'fast-check';
import { afterAll, expect, it, vi } from 'vitest';
import { pipeDialled } from '../../src/proxy/tcp/pipe.js';
import { TestPki } from '../support/pki.js';

const payload = randomBytes(2 * 1024 * 1024);
const pki = TestPki.create('pipe');
const server = pki.leaf('server', { cn: 'server', dns: ['localhost'] });
const servers: net.Server[] = [];

afterAll(() => {
  for (const s of servers) s.close();
});

/**
 * A peer whose writes complete a little later, copying the bytes they refer to only then. `writes`
 * counts its write() calls; a low high-water mark makes write() ask for 'drain' at once.
 */
function latePeer(halfClosed = false, highWaterMark = 1024 * 1024): { peer: Duplex; received: Promise<Buffer>; writes: () => number } {
  let writes = 0;
  const chunks: Buffer[] = [];
  let done: (b: Buffer) => void;
  const received = new Promise<Buffer>((resolve) => {
    done = resolve;
  });
  const peer = new Duplex({
    // High by default, so write() keeps saying "go on" while earlier writes are still in flight.
    writableHighWaterMark: highWaterMark,
    read() {}, // sends nothing the other way
    write(chunk: Buffer, _encoding, callback) {
      writes++;
      setTimeout(() => {
        chunks.push(Buffer.from(chunk));
        callback();
      }, 1);
    },
    final(callback) {
      done(Buffer.concat(chunks));
      callback();
    },
  });
  if (halfClosed) peer.push(null);
  return { peer, received, writes: () => writes };
}

async function listening(s: net.Server): Promise<number> {
  servers.push(s);
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return (s.address() as net.AddressInfo).port;
}

it('plain: every byte arrives intact through a peer whose writes complete late', async () => {
  const port = await listening(net.createServer((socket) => socket.end(payload)));
  const { peer, received } = latePeer();
  const dialled = pipeDialled(peer, dialPlain(port));
  expect((await received).equals(payload)).toBe(true);
  dialled.destroy();
});

function dialPlain(port: number): (onread: net.OnReadOpts) => net.Socket {
  return (onread) => net.connect({ host: '127.0.0.1', port, allowHalfOpen: true, onread });
}

function dialTls(port: number): (onread: net.OnReadOpts) => tls.TLSSocket {
  return (onread) =>
    tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: pki.ca.cert,
      allowHalfOpen: true,
      onread,
    } as tls.ConnectionOptions);
}

/** `body` from a TLS server, through pipeDialled, to a late peer; what it received and in how many writes. */
async function throughTls(body: Buffer, peerHighWaterMark?: number): Promise<{ received: Buffer; writes: number }> {
  const port = await listening(tls.createServer({ cert: server.cert, key: server.key }, (socket) => socket.end(body)));
  const { peer, received, writes } = latePeer(false, peerHighWaterMark);
  const dialled = pipeDialled(peer, dialTls(port));
  const bytes = await received;
  dialled.destroy();
  return { received: bytes, writes: writes() };
}

it('TLS: every decrypted byte arrives intact through a peer whose writes complete late', async () => {
  expect((await throughTls(payload)).received.equals(payload)).toBe(true);
});

it('TLS: a bulk transfer goes to the peer in a few large writes, not one per decrypted 16 KB chunk', async () => {
  const { received, writes } = await throughTls(payload);
  expect(received.equals(payload)).toBe(true);
  // 2 MiB is 128 chunks of 16 KB; batched, up to 4 of them go out in one write (64 KB batches).
  expect(writes).toBeLessThanOrEqual(128 / 2);
  expect(writes).toBeGreaterThanOrEqual(payload.length / (64 * 1024));
});

it('TLS: a peer that asks to wait at every write still gets every byte, in order', async () => {
  expect((await throughTls(payload, 1)).received.equals(payload)).toBe(true);
});

it('TLS: a burst that ends with the connection is written before the peer is ended', async () => {
  // Whole 16 KB chunks wait for the end of the burst; the server's close comes right behind them.
  for (const chunks of [1, 2, 5]) {
    const body = randomBytes(chunks * 16 * 1024);
    expect((await throughTls(body)).received.equals(body)).toBe(true);
  }
});

/** A TLS server that sends each of `messages` `gapMs` apart, then ends; its port. */
function pacedTlsServer(messages: Buffer[], gapMs: number): Promise<number> {
  return listening(
    tls.createServer({ cert: server.cert, key: server.key }, async (socket) => {
      for (const m of messages) {
        socket.write(m);
        await new Promise((r) => setTimeout(r, gapMs));
      }
      socket.end();
    }),
  );
}

it('TLS: small messages are written as they arrive, each at once', async () => {
  const messages = Array.from({ length: 20 }, (_, i) => Buffer.from(`message ${i}\n`));
  const port = await pacedTlsServer(messages, 5);
  const { peer, received, writes } = latePeer();
  const dialled = pipeDialled(peer, dialTls(port));
  expect((await received).equals(Buffer.concat(messages))).toBe(true);
  expect(writes()).toBe(messages.length);
  dialled.destroy();
});

it('TLS: an upstream that resets in the middle of a burst tears both sides down, nothing written after', async () => {
  // TLS over a TCP socket we hold, so the reset (RST) comes from below TLS, as a dropped peer's does.
  const context = tls.createSecureContext({ cert: server.cert, key: server.key });
  const port = await listening(
    net.createServer((raw) => {
      const socket = new tls.TLSSocket(raw, { isServer: true, secureContext: context });
      socket.on('error', () => {});
      socket.once('secure', () => socket.write(randomBytes(3 * 16 * 1024), () => raw.resetAndDestroy()));
    }),
  );
  const { peer } = latePeer();
  const peerClosed = new Promise((resolve) => peer.once('close', resolve));
  const writesAfterClose: number[] = [];
  peer.once('close', () => {
    const write = peer.write.bind(peer);
    peer.write = ((...args: Parameters<typeof write>) => {
      writesAfterClose.push(1);
      return write(...args);
    }) as typeof peer.write;
  });
  const dialled = pipeDialled(peer, dialTls(port));
  await peerClosed;
  await new Promise((r) => setTimeout(r, 50)); // a queued batch write would land by now
  expect(dialled.destroyed).toBe(true);
  expect(writesAfterClose).toEqual([]);
});

it('TLS: a peer that goes away in the middle of a burst takes the upstream connection with it, nothing written to it after', async () => {
  const port = await listening(tls.createServer({ cert: server.cert, key: server.key }, (socket) => socket.end(payload)));
  const { peer } = latePeer();
  let writes = 0;
  let writesAfterDestroy = 0;
  const write = peer.write.bind(peer);
  peer.write = ((...args: Parameters<typeof write>) => {
    if (peer.destroyed) writesAfterDestroy++;
    const more = write(...args);
    if (++writes === 1) peer.destroy(); // the app closed its connection after the first batch
    return more;
  }) as typeof peer.write;
  const dialled = pipeDialled(peer, dialTls(port));
  await new Promise((resolve) => dialled.once('close', resolve));
  await new Promise((r) => setTimeout(r, 50)); // a batch still waiting would be written by now
  expect(peer.destroyed).toBe(true);
  expect(writesAfterDestroy).toBe(0);
});

it('a peer that half-closed first still gets the whole response once the other side closes', async () => {
  const port = await listening(net.createServer({ allowHalfOpen: true }, (socket) => socket.on('end', () => socket.end(payload))));
  const { peer, received } = latePeer(true);
  pipeDialled(peer, dialPlain(port));
  // The dialled socket closes (both halves done) while the peer still holds most of the response.
  expect((await received).equals(payload)).toBe(true);
});

const realAllocUnsafe = Buffer.allocUnsafe;

/** The sizes of the read buffers (16 KB or 256 KB) pipeDialled allocates while `run` goes on. */
async function readBufferSizes(run: () => Promise<void>): Promise<number[]> {
  const sizes: number[] = [];
  const spy = vi.spyOn(Buffer, 'allocUnsafe').mockImplementation((size: number) => {
    sizes.push(size);
    return realAllocUnsafe(size);
  });
  try {
    await run();
  } finally {
    spy.mockRestore();
  }
  return sizes.filter((size) => size === 16 * 1024 || size === 256 * 1024);
}

it('a connection of small messages reads into one TLS chunk of buffer, never the large one', async () => {
  const messages = Array.from({ length: 10 }, (_, i) => Buffer.from(`reply ${i}\n`));
  const port = await pacedTlsServer(messages, 2);
  const sizes = await readBufferSizes(async () => {
    const { peer, received } = latePeer();
    const dialled = pipeDialled(peer, dialTls(port));
    expect((await received).equals(Buffer.concat(messages))).toBe(true);
    dialled.destroy();
  });
  expect(sizes[0]).toBe(16 * 1024);
  expect(sizes).not.toContain(256 * 1024);
});

it('a bulk transfer moves the connection to the large read buffer once a read fills the first one', async () => {
  for (const dial of ['plain', 'TLS'] as const) {
    const port =
      dial === 'plain'
        ? await listening(net.createServer((socket) => socket.end(payload)))
        : await listening(tls.createServer({ cert: server.cert, key: server.key }, (socket) => socket.end(payload)));
    const sizes = await readBufferSizes(async () => {
      const { peer, received } = latePeer();
      const dialled = pipeDialled<net.Socket>(peer, dial === 'plain' ? dialPlain(port) : dialTls(port));
      expect((await received).equals(payload)).toBe(true);
      dialled.destroy();
    });
    expect(sizes[0], dial).toBe(16 * 1024);
    expect(sizes.slice(1).length, dial).toBeGreaterThan(0);
    expect(new Set(sizes.slice(1)), dial).toEqual(new Set([256 * 1024]));
  }
});

it('property: whatever the sizes and pauses of what the other end sends, the peer gets every byte in order (plain and TLS)', async () => {
  // Sizes around the first buffer (16 KB) and the TLS chunk, so runs cross the move to the large
  // buffer at every kind of boundary: exactly full, one over, in the middle of a burst.
  const write = fc.record({
    size: fc.oneof(
      fc.integer({ min: 1, max: 2048 }),
      fc.integer({ min: 16 * 1024 - 2, max: 16 * 1024 + 2 }),
      fc.integer({ min: 1, max: 96 * 1024 }),
    ),
    pause: fc.boolean(),
  });
  await fc.assert(
    fc.asyncProperty(fc.array(write, { minLength: 1, maxLength: 12 }), fc.boolean(), fc.boolean(), async (writes, overTls, slowPeer) => {
      const chunks = writes.map((w) => randomBytes(w.size));
      const send = async (socket: net.Socket) => {
        for (const [i, chunk] of chunks.entries()) {
          socket.write(chunk);
          if (writes[i]?.pause) await new Promise((r) => setTimeout(r, 1));
        }
        socket.end();
      };
      const port = overTls
        ? await listening(tls.createServer({ cert: server.cert, key: server.key }, send))
        : await listening(net.createServer(send));
      const { peer, received } = latePeer(false, slowPeer ? 1 : undefined);
      const dialled = pipeDialled<net.Socket>(peer, overTls ? dialTls(port) : dialPlain(port));
      expect((await received).equals(Buffer.concat(chunks))).toBe(true);
      dialled.destroy();
    }),
    { numRuns: 40 },
  );
});
