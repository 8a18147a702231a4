/**
 * The idle limits of h2 listeners, on a real HTTP/2 server and client. Sessions
 * (h2/idle-connections.ts): one with no open stream for idleTimeout is closed, GOAWAY first (a
 * session between calls, one that only PINGs, a socket that never sent its preface); a busy one,
 * or one with a call in progress, is not. Streams (h2/stream-idle.ts): a silent one is ended, an
 * active one is not. And a closed session or stream is no longer referenced: Node's own timers
 * kept each until they fired (issue 24, defect 14).
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { v8Gc } from '../../src/memory/v8-gc.js';
import { closeSessionGracefully, watchIdleSessions } from '../../src/proxy/h2/idle-connections.js';
import { streamActive, watchIdleStream } from '../../src/proxy/h2/stream-idle.js';

const IDLE_MS = 400;
const servers: http2.Http2Server[] = [];

afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

interface IdleLimitedServer {
  readonly port: number;
  /** Sessions closed for idleness. */
  readonly closedIdle: http2.ServerHttp2Session[];
  /** Every session the server had, weakly. */
  readonly sessions: WeakRef<object>[];
}

/** A server answering 200 to every stream (to /hold after 3 idleTimeouts), with the idle limit. */
async function idleLimitedServer(): Promise<IdleLimitedServer> {
  const server = http2.createServer();
  servers.push(server);
  const closedIdle: http2.ServerHttp2Session[] = [];
  const sessions: WeakRef<object>[] = [];
  server.on('session', (session) => sessions.push(new WeakRef(session)));
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    const answer = () => {
      if (stream.closed) return;
      stream.respond({ ':status': 200 });
      stream.end('ok');
    };
    if (headers[':path'] === '/hold') setTimeout(answer, IDLE_MS * 3);
    else answer();
  });
  watchIdleSessions(server, IDLE_MS, (session) => {
    closedIdle.push(session);
    closeSessionGracefully(session, 100);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, closedIdle, sessions };
}

async function get(session: http2.ClientHttp2Session, path = '/'): Promise<void> {
  const req = session.request({ ':path': path });
  req.resume();
  await once(req, 'close');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The GOAWAYs a client session receives, as [code, lastStreamID]. */
function goaways(client: http2.ClientHttp2Session): [number, number][] {
  const seen: [number, number][] = [];
  client.on('goaway', (code, lastStreamID) => seen.push([code, lastStreamID]));
  return seen;
}

it('closes a session with no open stream for idleTimeout, GOAWAY with the last stream id first, and not before', async () => {
  const server = await idleLimitedServer();
  const client = http2.connect(`http://127.0.0.1:${server.port}`);
  client.on('error', () => undefined);
  const received = goaways(client);
  await get(client);
  await get(client);
  const started = performance.now();
  await once(client, 'close');
  expect(performance.now() - started).toBeGreaterThanOrEqual(IDLE_MS * 0.9);
  expect(received).toEqual([[http2.constants.NGHTTP2_NO_ERROR, 3]]);
  expect(server.closedIdle).toHaveLength(1);
});

it('closes a session that only PINGs (keepalive is not a call), GOAWAY first', async () => {
  const server = await idleLimitedServer();
  const client = http2.connect(`http://127.0.0.1:${server.port}`);
  client.on('error', () => undefined);
  const received = goaways(client);
  await get(client);
  const pinging = setInterval(() => {
    if (!client.closed && !client.destroyed) client.ping(() => undefined);
  }, IDLE_MS / 8);
  try {
    await once(client, 'close');
  } finally {
    clearInterval(pinging);
  }
  expect(received).toEqual([[http2.constants.NGHTTP2_NO_ERROR, 1]]);
});

it('keeps a session while a call is in progress longer than idleTimeout', async () => {
  const server = await idleLimitedServer();
  const client = http2.connect(`http://127.0.0.1:${server.port}`);
  client.on('error', () => undefined);
  await get(client, '/hold');
  expect(client.closed || client.destroyed).toBe(false);
  expect(server.closedIdle).toHaveLength(0);
  client.close();
});

it('closes a connection that never sends its preface', async () => {
  const server = await idleLimitedServer();
  const silent = net.connect(server.port, '127.0.0.1');
  silent.on('error', () => undefined);
  // Reads what the server sends (its SETTINGS), so that its close is seen.
  silent.resume();
  await once(silent, 'close');
  expect(server.closedIdle).toHaveLength(1);
});

it('keeps a session that goes on carrying calls past idleTimeout', async () => {
  const server = await idleLimitedServer();
  const client = http2.connect(`http://127.0.0.1:${server.port}`);
  client.on('error', () => undefined);
  for (let i = 0; i < 8; i++) {
    await get(client);
    await sleep(IDLE_MS / 3);
  }
  expect(client.closed || client.destroyed).toBe(false);
  expect(server.closedIdle).toHaveLength(0);
  client.close();
});

it('keeps no reference to a session once it closed', async () => {
  const gc = fullGc();
  const server = await idleLimitedServer();
  for (let i = 0; i < 20; i++) {
    const client = http2.connect(`http://127.0.0.1:${server.port}`);
    await get(client);
    client.close();
    await once(client, 'close');
  }
  // The server side closes a moment after the client's GOAWAY and FIN.
  await sleep(100);
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(10);
  }
  expect(server.sessions.filter((ref) => ref.deref() !== undefined)).toHaveLength(0);
  expect(server.closedIdle).toHaveLength(0);
});

/** A gc that frees what is no longer referenced, or a failure saying the test cannot run here. */
function fullGc(): () => void {
  const gc = v8Gc();
  if (!gc) throw new Error('this V8 does not expose gc; the test needs it to see what is still referenced');
  return () => gc({ type: 'major', flavor: 'last-resort' });
}

/** A server whose streams have the stream idle limit and answer only when `answer` says so. */
async function streamLimitedServer(): Promise<{ port: number; idled: string[]; streams: WeakRef<object>[]; server: http2.Http2Server }> {
  const server = http2.createServer();
  servers.push(server);
  const idled: string[] = [];
  const streams: WeakRef<object>[] = [];
  server.on('stream', (stream, headers) => {
    streams.push(new WeakRef(stream));
    stream.on('error', () => undefined);
    const path = String(headers[':path']);
    watchIdleStream(stream, IDLE_MS, () => {
      idled.push(path);
      stream.close(http2.constants.NGHTTP2_CANCEL);
    });
    // A body that keeps coming keeps the stream alive.
    stream.on('data', () => streamActive(stream));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, idled, streams, server };
}

it('ends a stream on which no data moved for idleTimeout, not one whose body keeps coming', async () => {
  const server = await streamLimitedServer();
  const client = http2.connect(`http://127.0.0.1:${server.port}`);
  client.on('error', () => undefined);
  const silent = client.request({ ':method': 'POST', ':path': '/silent' });
  const trickle = client.request({ ':method': 'POST', ':path': '/trickle' });
  for (const req of [silent, trickle]) req.on('error', () => undefined);
  for (let i = 0; i < 6; i++) {
    trickle.write('x');
    await sleep(IDLE_MS / 3);
  }
  expect(server.idled).toEqual(['/silent']);
  expect(trickle.closed).toBe(false);
  client.destroy();
});

/** A call whose session the server destroys while its stream is open, as a listener does when the peer resets or half-closes the connection (Node then destroys the stream before it closes it). */
async function abandonedCall(server: { port: number; server: http2.Http2Server }, path: string): Promise<void> {
  const client = http2.connect(`http://127.0.0.1:${server.port}`);
  client.on('error', () => undefined);
  const req = client.request({ ':method': 'POST', ':path': path });
  req.on('error', () => undefined);
  req.write('part of a body');
  const stream = await new Promise<http2.ServerHttp2Stream>((resolve) => server.server.once('stream', resolve));
  stream.session?.destroy();
  await once(client, 'close');
}

it('keeps no reference to a stream destroyed before it closed (its session destroyed under it)', async () => {
  const gc = fullGc();
  const server = await streamLimitedServer();
  for (let i = 0; i < 20; i++) await abandonedCall(server, `/abandoned/${i}`);
  await sleep(100);
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(10);
  }
  expect(server.streams.filter((ref) => ref.deref() !== undefined)).toHaveLength(0);
  expect(server.idled).toHaveLength(0);
});
