/**
 * tcp mode under the same abuse: silent handshakes, resets mid-stream, a client that half-closes
 * while the app is still answering, an app that is down. The byte pipe carries exactly what the
 * client sent, limits hold, and the process stays up.
 */
import { once } from 'node:events';
import net from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { type SidecarUnderAttack, startSidecarUnderAttack, tcpRelay, tlsConnect } from './harness.js';

/** An app that records every byte and answers "ok:<n bytes>" once the client half-closes. */
let received = Buffer.alloc(0);
let app: net.Server;
let sidecar: SidecarUnderAttack;

beforeAll(async () => {
  app = net.createServer({ allowHalfOpen: true }, (socket) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('end', () => {
      received = Buffer.concat([received, ...chunks]);
      setTimeout(() => socket.end(`ok:${Buffer.concat(chunks).length}`), 100);
    });
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  sidecar = await startSidecarUnderAttack({
    inbound: [
      { name: 'db', mode: 'tcp', target: `127.0.0.1:${(app.address() as net.AddressInfo).port}`, limits: { handshakeTimeout: '1s' } },
      { name: 'down', mode: 'tcp', target: `127.0.0.1:${await freePort()}` },
    ],
  });
});

afterAll(() => app.close());

async function exchange(listener: string, bytes: Buffer): Promise<string> {
  const socket = await tlsConnect(sidecar, listener);
  let answer = '';
  socket.on('data', (c: Buffer) => {
    answer += c.toString();
  });
  socket.on('error', () => undefined);
  socket.end(bytes); // half-close: the answer still comes back
  await new Promise((resolve) => socket.once('close', resolve));
  return answer;
}

it('carries a half-closed exchange byte for byte', async () => {
  const payload = Buffer.from(Array.from({ length: 100_000 }, (_, i) => i % 251));
  received = Buffer.alloc(0);
  expect(await exchange('db', payload)).toBe('ok:100000');
  expect(received.equals(payload)).toBe(true);
});

it('survives silent handshakes and TCP resets mid-stream, and keeps serving', async () => {
  const silent = await Promise.all(
    Array.from({ length: 50 }, async () => {
      const s = net.connect(sidecar.port('db'), '127.0.0.1');
      s.on('error', () => undefined);
      await once(s, 'connect');
      return s;
    }),
  );
  const relay = await tcpRelay(sidecar.port('db'));
  for (let i = 0; i < 10; i++) {
    const socket = await tlsConnect(sidecar, 'db', sidecar.good, undefined, relay.port);
    socket.on('error', () => undefined);
    socket.write(Buffer.alloc(32 * 1024, 7));
    await new Promise((r) => setTimeout(r, 20));
    relay.resetAll();
  }
  relay.close();
  // Silent sockets are closed by handshakeTimeout (1 s).
  await Promise.all(silent.map((s) => new Promise((resolve) => (s.destroyed ? resolve(undefined) : s.once('close', resolve)))));
  expect(await sidecar.metric('sidecar_tls_handshake_failures_total', { listener: 'db', reason: 'timeout' })).toBeGreaterThanOrEqual(50);
  expect(await exchange('db', Buffer.from('still here'))).toBe('ok:10');
  await sidecar.assertAlive();
});

it('closes connections to a dead app without a log line per connection', async () => {
  for (let i = 0; i < 60; i++) expect(await exchange('down', Buffer.from('x'))).toBe('');
  expect(sidecar.logs('app_unreachable').length).toBeLessThanOrEqual(30);
  await sidecar.assertAlive();
});
