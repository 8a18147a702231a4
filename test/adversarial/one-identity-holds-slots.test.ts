/**
 * One identity held every connection slot. At maxConnections only peers that no rule could ever
 * admit were evicted, so a peer admitted by any narrow rule (here GET /health for every workload)
 * could hold all the slots by sending allowed requests now and then, and the real client got
 * "socket hang up". Now, at the cap, the oldest idle connection (no request in flight) of the
 * identity holding the most slots is closed, never taking it below its fair share — as Envoy's
 * overload manager sheds the worst first — so one identity cannot hold all of them.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import type tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
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

const rules = {
  allow: [{ spiffe: 'spiffe://test/ns/default/sa/good' }, { spiffe: 'spiffe://test/ns/*/sa/*', methods: ['GET'], paths: ['/health'] }],
};
const limits = { maxConnections: 3 };

let app: RecordingApp;
let h2app: RecordingH2App;
let sidecar: SidecarUnderAttack;
let evil: Pem;

beforeAll(async () => {
  app = await startRecordingApp();
  h2app = await startRecordingH2App();
  sidecar = await startSidecarUnderAttack({
    inbound: [
      { name: 'web', target: `127.0.0.1:${app.port}`, authorization: rules, limits },
      { name: 'grpc', mode: 'h2', target: `127.0.0.1:${h2app.port}`, authorization: rules, limits },
    ],
  });
  evil = sidecar.pki.leaf('evil-client', { cn: 'evil.test', uris: ['spiffe://test/ns/evil/sa/evil'] });
});

afterAll(() => {
  app.close();
  h2app.close();
});

const isOpen = (socket: tls.TLSSocket) => !socket.destroyed && !socket.readableEnded;

/** A keep-alive GET on `socket`; resolves with the status once the whole answer arrived. */
async function keepAliveGet(socket: tls.TLSSocket, path: string): Promise<number> {
  let text = '';
  const onData = (c: Buffer) => {
    text += c.toString('latin1');
  };
  socket.on('data', onData);
  socket.on('error', () => undefined);
  socket.write(`GET ${path} HTTP/1.1\r\nHost: app.test\r\n\r\n`);
  for (;;) {
    const head = text.indexOf('\r\n\r\n');
    const length = /content-length: (\d+)/i.exec(text);
    if (head !== -1 && length && text.length >= head + 4 + Number(length[1])) break;
    if (head !== -1 && !length && text.endsWith('0\r\n\r\n')) break;
    await Promise.race([once(socket, 'data'), once(socket, 'close').then(() => Promise.reject(new Error(`closed: ${text}`)))]);
  }
  socket.off('data', onData);
  return Number(text.slice(9, 12));
}

describe('http mode', () => {
  let evilSockets: tls.TLSSocket[] = [];

  it('closes the oldest idle connection of the identity holding every slot when another identity arrives', async () => {
    // One after another, so the gate sees them oldest first in this order.
    evilSockets = [];
    for (let i = 0; i < 3; i++) evilSockets.push(await tlsConnect(sidecar, 'web', evil));
    for (const socket of evilSockets) expect(await keepAliveGet(socket, '/health')).toBe(200);
    const before = app.requests.length;
    expect((await goodGet(sidecar, 'web', '/orders')).status).toBe(200);
    expect(app.requests.slice(before).map((r) => r.url)).toEqual(['/orders']);
    await new Promise((r) => setTimeout(r, 200));
    // The oldest one made room; the evil identity keeps the others.
    expect(evilSockets.map(isOpen)).toEqual([false, true, true]);
    expect(sidecar.logs('connection_evicted').some((l) => l.reason === 'identity_share')).toBe(true);
    expect(await sidecar.metric('sidecar_connections_shed_total', { listener: 'web', reason: 'identity_share' })).toBeGreaterThan(0);
  });

  it('never sheds the newcomer identity below one, nor lets the hog take the slot back', async () => {
    const good = await tlsConnect(sidecar, 'web');
    // Slots: evil ×2 and good ×1. A new evil connection is refused; good's stays.
    const extra = await tlsConnect(sidecar, 'web', evil);
    extra.on('error', () => undefined);
    if (isOpen(extra)) await once(extra, 'close');
    expect(isOpen(good)).toBe(true);
    expect(await keepAliveGet(good, '/orders')).toBe(200);
    expect(await keepAliveGet(evilSockets[1] as tls.TLSSocket, '/health')).toBe(200);
    good.destroy();
    for (const s of evilSockets) s.destroy();
  });
});

describe('h2 mode', () => {
  it('closes an idle session of the identity holding every slot, not one with a call in flight', async () => {
    const sessions: { session: http2.ClientHttp2Session; socket: tls.TLSSocket }[] = [];
    for (let i = 0; i < 3; i++) {
      const socket = await tlsConnect(sidecar, 'grpc', evil, ['h2']);
      const session = http2.connect('https://localhost', { createConnection: () => socket });
      session.on('error', () => undefined);
      await once(session, 'remoteSettings');
      sessions.push({ session, socket });
    }
    const goaways: number[] = [];
    sessions.forEach(({ session }, i) => {
      goaways[i] = 0;
      session.on('goaway', () => {
        goaways[i] = (goaways[i] ?? 0) + 1;
      });
    });
    // The oldest session keeps a call open (its body never ends): it is busy, not idle.
    const busy = sessions[0]?.session.request({ ':method': 'GET', ':path': '/health' }, { endStream: false });
    busy?.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 200));
    expect((await h2Get(sidecar, 'grpc', '/orders')).status).toBe(200);
    // The evicted session gets GOAWAY first, then its socket is closed (issue 29, defect 2).
    await vi.waitFor(() => expect(isOpen(sessions[1]?.socket as tls.TLSSocket)).toBe(false), { timeout: 5000 });
    expect(sessions.map((s) => isOpen(s.socket))).toEqual([true, false, true]);
    expect(goaways).toEqual([0, 1, 0]);
    for (const { session } of sessions) session.destroy();
  });
});

it('keeps serving good clients and stays alive', async () => {
  await sidecar.assertAlive('web');
  await sidecar.assertAlive('grpc');
});
