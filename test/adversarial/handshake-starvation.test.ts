/**
 * Defect 3: silent sockets held for Node's 120 s handshake timeout counted toward
 * maxConnections, so about 1,000 of them locked every good client out, unlogged. Now pending
 * handshakes have their own bound (the oldest is evicted), only completed handshakes count toward
 * maxConnections, a silent socket is closed after handshakeTimeout, and all of it is counted.
 */
import { once } from 'node:events';
import net from 'node:net';
import { beforeAll, expect, it } from 'vitest';
import { goodGet, rawExchange, type SidecarUnderAttack, startAppBehindSidecar, tlsConnect } from './harness.js';

let sidecar: SidecarUnderAttack;

beforeAll(async () => {
  ({ sidecar } = await startAppBehindSidecar({ limits: { maxConnections: 20, maxPendingHandshakes: 30, handshakeTimeout: '2s' } }, {}));
});

async function silentSocket(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  return socket;
}

it('serves good clients while 300 silent sockets wait in the handshake', async () => {
  const port = sidecar.port('web');
  const silent = await Promise.all(Array.from({ length: 300 }, () => silentSocket(port)));
  for (let i = 0; i < 5; i++) expect((await goodGet(sidecar, 'web', `/during/${i}`)).status).toBe(200);
  expect(await sidecar.metric('sidecar_connections_shed_total', { listener: 'web', reason: 'pending_handshakes' })).toBeGreaterThanOrEqual(
    270,
  );
  expect(sidecar.logs('handshake_evicted').length).toBeGreaterThan(0);
  for (const s of silent) s.destroy();
});

it('never drops an established connection for silent sockets that reconnect as fast as they are closed', async () => {
  const port = sidecar.port('web');
  const established = await Promise.all(Array.from({ length: 5 }, () => tlsConnect(sidecar, 'web')));
  let running = true;
  const flood = async () => {
    while (running) {
      const socket = await silentSocket(port).catch(() => undefined);
      if (socket) await Promise.race([once(socket, 'close'), new Promise((r) => setTimeout(r, 50))]);
    }
  };
  const flooders = Array.from({ length: 60 }, flood);
  try {
    // Connections that completed a handshake are never shed for pending ones...
    for (const [i, socket] of established.entries()) {
      const answer = await rawExchange(socket, `GET /established/${i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect(answer).toMatch(/^HTTP\/1\.1 200/);
    }
    // ...and a new client gets through, retrying if the flood evicted its handshake (it competes
    // with the flood only while its ClientHello is unread).
    for (let i = 0; i < 5; i++) expect((await withRetries(() => goodGet(sidecar, 'web', `/flood/${i}`))).status).toBe(200);
  } finally {
    running = false;
    await Promise.all(flooders);
  }
});

async function withRetries<T>(attempt: () => Promise<T>, tries = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (i >= tries) throw err;
    }
  }
}

it('closes a socket that stays silent for handshakeTimeout, and says so', async () => {
  const socket = await silentSocket(sidecar.port('web'));
  const started = Date.now();
  await once(socket, 'close');
  const waited = Date.now() - started;
  expect(waited).toBeGreaterThan(1500);
  expect(waited).toBeLessThan(6000);
  expect(await sidecar.metric('sidecar_tls_handshake_failures_total', { listener: 'web', reason: 'timeout' })).toBeGreaterThan(0);
});

it('does not count a TCP connect-and-close (health check, port scan) as a refused handshake', async () => {
  const before = await sidecar.metric('sidecar_tls_handshake_failures_total', { listener: 'web', reason: 'peer_closed' });
  for (let i = 0; i < 10; i++) {
    const socket = await silentSocket(sidecar.port('web'));
    socket.end();
    await once(socket, 'close');
  }
  await new Promise((r) => setTimeout(r, 200));
  expect(await sidecar.metric('sidecar_tls_handshake_failures_total', { listener: 'web', reason: 'peer_closed' })).toBe(before);
});

it('closes connections over maxConnections once their handshake completes; open ones keep working', async () => {
  const held = await Promise.all(Array.from({ length: 20 }, () => tlsConnect(sidecar, 'web')));
  const extra = await tlsConnect(sidecar, 'web');
  extra.on('error', () => undefined);
  await once(extra, 'close');
  expect(await sidecar.metric('sidecar_connections_shed_total', { listener: 'web', reason: 'max_connections' })).toBeGreaterThanOrEqual(1);
  const over = sidecar.logs('connection_over_limit');
  expect(over.length).toBeGreaterThan(0);
  expect(over[0]?.remoteAddress).toBe('127.0.0.1');
  // An open connection still carries a request.
  const first = held[0] as (typeof held)[number];
  let answer = '';
  first.on('data', (c: Buffer) => {
    answer += c.toString();
  });
  first.write('GET /held HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  await once(first, 'close');
  expect(answer).toMatch(/^HTTP\/1\.1 200/);
  for (const s of held) s.destroy();
  await sidecar.assertAlive();
});
