/**
 * h2 chaos: thousands of random stream operations from a raw h2 client — opens, data, resets
 * with random codes, resets of idle streams, window updates, pings, settings, malformed and
 * unknown frames, abrupt closes and TCP resets — against an inbound h2 listener (mTLS) and an
 * outbound one (cleartext), while the app goes down and comes back. The process survives, good
 * clients are served at the end, and its memory stays bounded.
 *
 * The run is seeded (CHAOS_SEED to replay one); the seed is in the test name.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import type tls from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { waitFor } from '../support/cli.js';
import { freePort } from '../support/ports.js';
import { Flags, FrameType, frame, headersFrame, PREFACE, readFrames, rstStream, settings } from './h2-frames.js';
import { type SidecarUnderAttack, startSidecarUnderAttack, tcpRelay, tlsConnect } from './harness.js';

const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);
const OPERATIONS_PER_ROUND = 1500;

/** mulberry32: a small seeded PRNG, so a failing run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The app: answers after a random delay, sometimes resets, sometimes never answers. */
class FlakyApp {
  #server: http2.Http2Server | undefined;
  readonly port: number;

  constructor(port: number) {
    this.port = port;
  }

  async up(): Promise<void> {
    const server = http2.createServer();
    server.on('sessionError', () => undefined);
    server.on('stream', (stream, headers) => {
      stream.on('error', () => undefined);
      stream.resume();
      const roll = Number(String(headers[':path']).split('/').pop()) % 10;
      if (roll === 0) return stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      if (roll === 1) return; // never answers; the peer's reset or the session's end closes it
      setTimeout(() => {
        if (stream.destroyed || stream.closed) return;
        stream.respond({ ':status': 200 });
        stream.end('ok');
      }, roll * 3);
    });
    // Back on the same port (the sidecar's target). While the app was down, a connection of a test
    // running in parallel may have taken that port as its source port: wait for it to let go.
    for (let attempt = 0; ; attempt++) {
      const error = await new Promise<Error | undefined>((resolve) => {
        server.once('error', resolve);
        server.listen(this.port, '127.0.0.1', () => resolve(undefined));
      });
      if (!error) break;
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 100) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
    this.#server = server;
  }

  down(): void {
    this.#server?.close();
    // Cut open sessions too: close() only stops accepting.
    for (const session of this.#sessions) session.destroy();
    this.#server = undefined;
  }

  readonly #sessions = new Set<http2.ServerHttp2Session>();

  track(): void {
    this.#server?.on('session', (s) => {
      this.#sessions.add(s);
      s.on('close', () => this.#sessions.delete(s));
    });
  }
}

let app: FlakyApp;
let sidecar: SidecarUnderAttack;

beforeAll(async () => {
  app = new FlakyApp(await freePort());
  await app.up();
  app.track();
  const inboundPort = await freePort();
  sidecar = await startSidecarUnderAttack({
    inbound: [
      { name: 'grpc', mode: 'h2', listen: `127.0.0.1:${inboundPort}`, target: `127.0.0.1:${app.port}`, limits: { idleTimeout: '3s' } },
    ],
    // Outbound to our own inbound listener: mTLS h2 both ways through one process.
    outbound: [{ name: 'out', mode: 'h2', target: `127.0.0.1:${inboundPort}`, serverName: 'localhost', limits: { idleTimeout: '3s' } }],
  });
  relay = await tcpRelay(inboundPort);
});

afterAll(() => {
  app.down();
  relay.close();
});

type Connection = { socket: net.Socket | tls.TLSSocket; reset(): void; nextStream: number };

let relay: Awaited<ReturnType<typeof tcpRelay>>;

async function connect(outbound: boolean): Promise<Connection> {
  if (outbound) {
    const socket = net.connect(sidecar.port('out'), '127.0.0.1');
    socket.on('error', () => undefined);
    await once(socket, 'connect');
    readFrames(socket as tls.TLSSocket);
    socket.write(Buffer.concat([PREFACE, settings()]));
    return { socket, reset: () => socket.resetAndDestroy(), nextStream: 1 };
  }
  // Inbound connections go through a TCP relay, which can reset the TCP connection under TLS.
  const socket = await tlsConnect(sidecar, 'grpc', sidecar.good, ['h2'], relay.port);
  readFrames(socket);
  socket.write(Buffer.concat([PREFACE, settings()]));
  return { socket, reset: () => relay.resetAll(), nextStream: 1 };
}

async function chaos(random: () => number, operations: number): Promise<void> {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const connections: Connection[] = [];
  for (let i = 0; i < operations; i++) {
    if (connections.length === 0 || random() < 0.03) connections.push(await connect(random() < 0.4));
    const conn = pick(connections);
    if (conn.socket.destroyed || conn.socket.writableEnded) {
      connections.splice(connections.indexOf(conn), 1);
      continue;
    }
    const open = () => {
      conn.nextStream += 2;
      return conn.nextStream - 2;
    };
    const some = () => Math.max(1, conn.nextStream - 2 - 2 * Math.floor(random() * 4));
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));
    const op = Math.floor(random() * 16);
    const path = `/chaos/${Math.floor(random() * 1000)}`;
    switch (op) {
      case 0:
      case 1:
      case 2:
        conn.socket.write(headersFrame(open(), path, random() < 0.5));
        break;
      case 3:
        conn.socket.write(frame(FrameType.DATA, random() < 0.5 ? Flags.END_STREAM : 0, some(), bytes(Math.floor(random() * 2000))));
        break;
      case 4:
      case 5:
        conn.socket.write(rstStream(some(), Math.floor(random() * 14)));
        break;
      case 6: {
        const id = open();
        conn.socket.write(Buffer.concat([headersFrame(id, path, false), rstStream(id)]));
        break;
      }
      case 7:
        conn.socket.write(frame(FrameType.WINDOW_UPDATE, 0, random() < 0.5 ? 0 : some(), bytes(4)));
        break;
      case 8:
        conn.socket.write(frame(FrameType.PING, 0, 0, bytes(8)));
        break;
      case 9:
        conn.socket.write(settings([[1 + Math.floor(random() * 6), Math.floor(random() * 2 ** 32)]]));
        break;
      case 10:
        conn.socket.write(
          frame(Math.floor(random() * 20), Math.floor(random() * 256), Math.floor(random() * 10), bytes(Math.floor(random() * 64))),
        );
        break;
      case 11:
        conn.socket.write(frame(FrameType.CONTINUATION, Flags.END_HEADERS, some(), bytes(16)));
        break;
      case 12:
        conn.socket.write(frame(FrameType.PRIORITY, 0, some(), bytes(5)));
        break;
      case 13:
        conn.socket.write(frame(FrameType.HEADERS, Flags.END_HEADERS, open(), bytes(Math.floor(random() * 40))));
        break;
      case 14:
        if (random() < 0.2) conn.reset();
        else conn.socket.destroy();
        break;
      default:
        conn.socket.end();
    }
    if (i % 50 === 0) await new Promise((r) => setTimeout(r, 5));
  }
  for (const conn of connections) conn.socket.destroy();
  await new Promise((r) => setTimeout(r, 300));
}

it(`survives ${3 * OPERATIONS_PER_ROUND} random h2 operations with the app up and down, memory bounded (seed ${SEED})`, async () => {
  const random = prng(SEED);
  await chaos(random, OPERATIONS_PER_ROUND);
  await sidecar.assertAlive('grpc');
  const rssAfterFirst = (await sidecar.metric('process_resident_memory_bytes')) ?? 0;
  app.down();
  await chaos(random, OPERATIONS_PER_ROUND);
  await app.up();
  app.track();
  await chaos(random, OPERATIONS_PER_ROUND);
  await sidecar.assertAlive('grpc');
  const rssAtEnd = (await sidecar.metric('process_resident_memory_bytes')) ?? 0;
  // Two more rounds of abuse did not grow the process by more than a few buffers' worth.
  expect(rssAtEnd - rssAfterFirst).toBeLessThan(64 * 1024 * 1024);
  console.log(
    await sidecar.metric('sidecar_connections_active', { listener: 'grpc' }),
    await sidecar.metric('sidecar_connections_active', { listener: 'out' }),
  );
  // Connections the chaos left behind (a session nghttp2 gave up on stops reading) are reclaimed
  // by the idle limit: nothing an attacker leaves open outlives limits.idleTimeout.
  // What is left: the outbound listener's own session to the inbound one. idleTimeout (3 s) plus
  // the graceful close's two grace periods (~2 s) is 5 s; polled up to 15 s, as a loaded machine
  // runs the timers late (a fixed 4.5 s wait failed under a full parallel suite).
  const active = async (listener: string) => (await sidecar.metric('sidecar_connections_active', { listener })) ?? 0;
  await waitFor(async () => (await active('grpc')) <= 1 && (await active('out')) === 0, 15_000, 'the idle connections to be closed');
  expect(await active('grpc')).toBeLessThanOrEqual(1);
  expect(await active('out')).toBe(0);
}, 120_000);
