/**
 * Requests pipelined behind a refused one were still processed: a 403 (or 400) closes its
 * connection, but Node's parser had already read the requests queued behind it, and each was
 * authorized, audited, counted and logged — 200 pipelined denied requests were 200 denials, 200
 * audit attempts and 200 access lines for one connection, and allowed ones behind a denied one
 * reached the app on a connection that was closing. Now a request on a connection that is closing
 * is ignored: nothing reaches the app, nothing is counted, the connection ends after the answer.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pem } from '../support/pki.js';
import {
  goodGet,
  h2Get,
  type RecordingApp,
  type RecordingH2App,
  rawExchange,
  type SidecarUnderAttack,
  startRecordingApp,
  startRecordingH2App,
  startSidecarUnderAttack,
  tlsConnect,
} from './harness.js';

const PIPELINED = 200;
const rules = { allow: [{ spiffe: 'spiffe://test/ns/default/sa/good', paths: ['/public'] }] };

let app: RecordingApp;
let h2app: RecordingH2App;
let sidecar: SidecarUnderAttack;
let denied: Pem;

beforeAll(async () => {
  app = await startRecordingApp();
  h2app = await startRecordingH2App();
  sidecar = await startSidecarUnderAttack({
    inbound: [
      { name: 'web', target: `127.0.0.1:${app.port}`, authorization: rules, accessLog: true },
      { name: 'grpc', mode: 'h2', target: `127.0.0.1:${h2app.port}`, authorization: rules, accessLog: true },
    ],
  });
  denied = sidecar.pki.leaf('denied-client', { cn: 'other.test', uris: ['spiffe://test/ns/default/sa/other'] });
});

afterAll(() => {
  app.close();
  h2app.close();
});

const denials = async (listener: string) => (await sidecar.metric('sidecar_authz_denials_total', { listener })) ?? 0;
const accessLines = (listener: string) => sidecar.logs('access').filter((l) => l.listener === listener).length;
const settle = () => new Promise((r) => setTimeout(r, 500));

describe('http mode', () => {
  it(`answers one 403 to ${PIPELINED} pipelined denied requests and counts one denial`, async () => {
    const [deniedBefore, linesBefore, appBefore] = [await denials('web'), accessLines('web'), app.requests.length];
    const request = 'GET /orders HTTP/1.1\r\nHost: app.test\r\n\r\n';
    const answer = await rawExchange(await tlsConnect(sidecar, 'web', denied), request.repeat(PIPELINED), 5000);
    await settle();
    expect(answer.match(/HTTP\/1\.1 /g)).toEqual(['HTTP/1.1 ']);
    expect(answer).toMatch(/^HTTP\/1\.1 403/);
    expect(app.requests.length).toBe(appBefore);
    expect((await denials('web')) - deniedBefore).toBe(1);
    expect(accessLines('web') - linesBefore).toBe(1);
  });

  it('forwards nothing pipelined behind a denied request of an allowed peer', async () => {
    const appBefore = app.requests.length;
    const bytes = `GET /admin HTTP/1.1\r\nHost: app.test\r\n\r\n${'GET /public/x HTTP/1.1\r\nHost: app.test\r\n\r\n'.repeat(50)}`;
    const answer = await rawExchange(await tlsConnect(sidecar, 'web'), bytes, 5000);
    await settle();
    expect(answer.match(/HTTP\/1\.1 \d+/g)).toEqual(['HTTP/1.1 403']);
    expect(app.requests.length).toBe(appBefore);
  });

  it('ignores requests pipelined behind a refused target (400) too', async () => {
    const appBefore = app.requests.length;
    const bytes = `GET /public/a%2fb HTTP/1.1\r\nHost: app.test\r\n\r\n${'GET /public/x HTTP/1.1\r\nHost: app.test\r\n\r\n'.repeat(50)}`;
    const answer = await rawExchange(await tlsConnect(sidecar, 'web'), bytes, 5000);
    await settle();
    expect(answer.match(/HTTP\/1\.1 \d+/g)).toEqual(['HTTP/1.1 400']);
    expect(app.requests.length).toBe(appBefore);
  });
});

describe('h2 mode', () => {
  it(`answers the streams sent before the GOAWAY and processes none after it`, async () => {
    const [deniedBefore, appBefore] = [await denials('grpc'), h2app.streams.length];
    const socket = await tlsConnect(sidecar, 'grpc', sidecar.good, ['h2']);
    const session = http2.connect('https://localhost', { createConnection: () => socket });
    session.on('error', () => undefined);
    await once(session, 'remoteSettings');
    // One denied stream, then allowed ones in the same flight: none may reach the app.
    const statuses: Promise<number>[] = [];
    for (const path of ['/admin', ...Array.from({ length: 50 }, () => '/public/x')]) {
      const req = session.request({ ':method': 'GET', ':path': path });
      req.on('error', () => undefined);
      req.end();
      req.resume();
      statuses.push(
        new Promise((resolve) => {
          req.on('response', (h) => resolve(Number(h[':status'])));
          req.on('close', () => resolve(0));
        }),
      );
    }
    const answered = await Promise.all(statuses);
    session.destroy();
    await settle();
    expect(answered[0]).toBe(403);
    expect(answered.slice(1).filter((s) => s !== 0)).toEqual([]);
    expect(h2app.streams.length).toBe(appBefore);
    expect((await denials('grpc')) - deniedBefore).toBe(1);
  });
});

it('keeps serving good clients and stays alive', async () => {
  expect((await goodGet(sidecar, 'web', '/public/ok')).status).toBe(200);
  expect((await h2Get(sidecar, 'grpc', '/public/ok')).status).toBe(200);
  await sidecar.assertAlive();
});
