/**
 * Peers that authorization denies held the connection slots. `maxConnections` counts every peer
 * that completed a handshake, and a 403 kept the connection open: with maxConnections 3, three
 * denied keep-alive peers (any certificate from the shared CA) locked the allowed one out, in http
 * and in h2. Now a 403 closes its connection (Connection: close; GOAWAY in h2), and at the cap a
 * peer that no rule could ever admit is closed first to make room for a new one.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import type tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pem } from '../support/pki.js';
import {
  goodGet,
  h2Get,
  type RecordingApp,
  type RecordingH2App,
  type SidecarUnderAttack,
  startRecordingApp,
  startRecordingH2App,
  startSidecarUnderAttack,
  tlsConnect,
} from './harness.js';

const onlyGood = { allow: [{ spiffe: 'spiffe://test/ns/default/sa/good' }] };
const limits = { maxConnections: 3 };

let app: RecordingApp;
let h2app: RecordingH2App;
let sidecar: SidecarUnderAttack;
let denied: Pem;

beforeAll(async () => {
  app = await startRecordingApp();
  h2app = await startRecordingH2App();
  sidecar = await startSidecarUnderAttack({
    inbound: [
      { name: 'web', target: `127.0.0.1:${app.port}`, authorization: onlyGood, limits },
      { name: 'grpc', mode: 'h2', target: `127.0.0.1:${h2app.port}`, authorization: onlyGood, limits },
    ],
  });
  // Same CA, another workload: a valid certificate that no rule admits.
  denied = sidecar.pki.leaf('denied-client', { cn: 'other.test', uris: ['spiffe://test/ns/default/sa/other'] });
});

afterAll(() => {
  app.close();
  h2app.close();
});

/** Resolves when the socket closes, or with false after `ms`. */
function closedWithin(socket: tls.TLSSocket, ms: number): Promise<boolean> {
  if (socket.destroyed) return Promise.resolve(true);
  return Promise.race([once(socket, 'close').then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
}

/** A keep-alive GET on `socket`; resolves with the raw response head once it arrived. */
async function keepAliveGet(socket: tls.TLSSocket, path: string): Promise<string> {
  let text = '';
  socket.on('data', (c: Buffer) => {
    text += c.toString('latin1');
  });
  socket.on('error', () => undefined);
  socket.write(`GET ${path} HTTP/1.1\r\nHost: app.test\r\nConnection: keep-alive\r\n\r\n`);
  while (!text.includes('\r\n\r\n')) await once(socket, 'data');
  return text;
}

describe('http mode', () => {
  it('closes the connection of a denied request, so three denied keep-alive peers do not lock the allowed one out', async () => {
    const before = app.requests.length;
    const peers = await Promise.all([0, 1, 2].map(() => tlsConnect(sidecar, 'web', denied)));
    for (const peer of peers) {
      const head = await keepAliveGet(peer, '/orders');
      expect(head).toMatch(/^HTTP\/1\.1 403/);
      expect(head.toLowerCase()).toContain('connection: close');
      expect(await closedWithin(peer, 5000)).toBe(true);
    }
    expect(app.requests.slice(before)).toEqual([]);
    expect((await goodGet(sidecar, 'web', '/orders')).status).toBe(200);
  });

  it('closes a denied peer that holds a slot without sending anything when the allowed one arrives at the cap', async () => {
    const peers = await Promise.all([0, 1, 2].map(() => tlsConnect(sidecar, 'web', denied)));
    expect((await goodGet(sidecar, 'web', '/orders')).status).toBe(200);
    // The oldest of them made room (the others wait for their headersTimeout).
    expect(await Promise.race(peers.map((p) => closedWithin(p, 5000)))).toBe(true);
    expect(sidecar.logs('connection_evicted').some((l) => l.reason === 'denied_peer')).toBe(true);
    expect(await sidecar.metric('sidecar_connections_shed_total', { listener: 'web', reason: 'denied_peer' })).toBeGreaterThan(0);
    for (const p of peers) p.destroy();
  });
});

describe('h2 mode', () => {
  it('ends the session of a denied stream with GOAWAY after the 403, so denied sessions do not lock the allowed one out', async () => {
    const before = h2app.streams.length;
    const sessions = await Promise.all(
      [0, 1, 2].map(async () => {
        const socket = await tlsConnect(sidecar, 'grpc', denied, ['h2']);
        const session = http2.connect('https://localhost', { createConnection: () => socket });
        session.on('error', () => undefined);
        return { session, socket };
      }),
    );
    for (const { session, socket } of sessions) {
      const goaway = once(session, 'goaway');
      const req = session.request({ ':method': 'GET', ':path': '/orders' });
      req.on('error', () => undefined);
      req.end();
      const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
      req.resume();
      expect(Number(headers[':status'])).toBe(403);
      await goaway;
      expect(await closedWithin(socket, 5000)).toBe(true);
    }
    expect(h2app.streams.slice(before)).toEqual([]);
    expect((await h2Get(sidecar, 'grpc', '/orders')).status).toBe(200);
  });
});

it('audits the denials and stays alive', async () => {
  expect(sidecar.logs('authz_denied').length).toBeGreaterThan(0);
  await sidecar.assertAlive('web');
  await sidecar.assertAlive('grpc');
});
