/**
 * `;` path parameters walk past path rules. With `paths: [/public]`, `GET /public/..;/admin` was
 * authorized (it is under /public as written) and forwarded as is, and an app that routes like
 * Tomcat, Jetty or Spring cuts `;…` off each segment before resolving dot segments: it served
 * /admin. Now a `;` in a path is refused with a 400 (semicolons: reject, the default), or cut off
 * each segment before normalizing (semicolons: strip), so the app serves what was authorized.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { servletPath } from '../support/servlet-routing.js';
import {
  goodGet,
  type RecordingApp,
  type RecordingH2App,
  rawExchange,
  type SidecarUnderAttack,
  startRecordingApp,
  startRecordingH2App,
  startSidecarUnderAttack,
  tlsConnect,
} from './harness.js';

const allowPublic = { allow: [{ spiffe: 'spiffe://test/ns/default/sa/good', paths: ['/public'] }] };

/** Walks out of /public that a servlet app resolves to /admin (or /admin/x). */
const WALKS = [
  '/public/..;/admin',
  '/public/..;x=1/admin',
  '/public/.;/../admin',
  '/public/..;jsessionid=1/admin/x',
  '/public/..%3B/admin',
  '/public/..%3b/admin',
  '/public;/../admin',
];

let app: RecordingApp;
let h2app: RecordingH2App;
let sidecar: SidecarUnderAttack;

beforeAll(async () => {
  app = await startRecordingApp();
  h2app = await startRecordingH2App();
  sidecar = await startSidecarUnderAttack({
    inbound: [
      { name: 'web', target: `127.0.0.1:${app.port}`, authorization: allowPublic },
      { name: 'strip', target: `127.0.0.1:${app.port}`, authorization: allowPublic, requestPath: { semicolons: 'strip' } },
      { name: 'grpc', mode: 'h2', target: `127.0.0.1:${h2app.port}`, authorization: allowPublic },
    ],
  });
});

afterAll(() => {
  app.close();
  h2app.close();
});

async function rawGet(listener: string, target: string): Promise<{ status: number; reached: string[] }> {
  const before = app.requests.length;
  const answer = await rawExchange(await tlsConnect(sidecar, listener), `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  return { status: Number(answer.slice(9, 12)), reached: app.requests.slice(before).map((r) => r.url) };
}

describe('semicolons: reject (the default)', () => {
  it.each(WALKS)('GET %s is refused with a 400 and never reaches the app', async (target) => {
    const { status, reached } = await rawGet('web', target);
    expect(status).toBe(400);
    expect(reached).toEqual([]);
  });

  it.each(WALKS)('h2 :path %s is refused with a 400 and never reaches the app', async (target) => {
    const before = h2app.streams.length;
    const socket = await tlsConnect(sidecar, 'grpc', sidecar.good, ['h2']);
    const session = http2.connect('https://localhost', { createConnection: () => socket });
    session.on('error', () => undefined);
    const req = session.request({ ':method': 'GET', ':path': target });
    req.on('error', () => undefined);
    req.end();
    const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
    req.resume();
    await once(req, 'close');
    session.close();
    expect(Number(headers[':status'])).toBe(400);
    expect(h2app.streams.slice(before)).toEqual([]);
  });

  it('keeps ; in the query, which is the app’s business', async () => {
    const { status, reached } = await rawGet('web', '/public/x?a=1;b=2');
    expect(status).toBe(200);
    expect(reached).toEqual(['/public/x?a=1;b=2']);
  });
});

describe('semicolons: strip', () => {
  it.each(WALKS.filter((t) => !/%3b/i.test(t)))('GET %s is authorized as the servlet app would serve it: denied', async (target) => {
    const { status, reached } = await rawGet('strip', target);
    expect(status).toBe(403);
    expect(reached).toEqual([]);
  });

  it('forwards a session id segment without its parameters, as the path that was authorized', async () => {
    const { status, reached } = await rawGet('strip', '/public;jsessionid=ABC/orders;v=2?q=1');
    expect(status).toBe(200);
    expect(reached).toEqual(['/public/orders?q=1']);
  });
});

it('every request that reached the app is served under /public by a servlet-style router', () => {
  const served = app.requests.map((r) => servletPath(r.url));
  expect(served.length).toBeGreaterThan(0);
  for (const path of served) expect(path === '/public' || path?.startsWith('/public/')).toBe(true);
  expect(app.raw()).not.toMatch(/^[A-Z]+ [^ ]*admin[^ ]* HTTP/m);
});

it('audits the refusals and keeps serving good clients', async () => {
  expect(sidecar.logs('request_target_refused').some((l) => String(l.reason).includes('path parameter'))).toBe(true);
  expect(await sidecar.metric('sidecar_bad_requests_total', { listener: 'web', reason: 'request_target' })).toBeGreaterThan(0);
  expect((await goodGet(sidecar, 'web', '/public/ok')).status).toBe(200);
  await sidecar.assertAlive();
});
