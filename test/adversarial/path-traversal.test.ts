/**
 * Defect 2: path rules checked on one reading of the target and another forwarded. With
 * `paths: [/public]`, every spelling of a walk into /admin is either refused or forwarded as the
 * path that was authorized; the app's raw bytes never hold an /admin request line.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  goodGet,
  type RecordingApp,
  type RecordingH2App,
  rawExchange,
  type SidecarUnderAttack,
  startHttpAndH2BehindSidecar,
  tlsConnect,
} from './harness.js';

const allowPublic = { allow: [{ spiffe: 'spiffe://test/ns/default/sa/good', paths: ['/public', '/api/orders'] }] };

/** Targets an attacker tries, and what the app may see for each: the normalized path, or nothing (400). */
const ATTACKS: [string, string | null][] = [
  ['/admin/../public', '/public'],
  ['/admin/%2e%2e/public', '/public'],
  ['/admin/%2E%2E/public', '/public'],
  ['/public/../admin', null], // normalizes to /admin: denied (403), never forwarded
  ['//admin/public', null], // /admin/public: denied
  ['/public//x', '/public/x'],
  ['/public/./x', '/public/x'],
  ['/public%2f..%2fadmin', null], // encoded slash: 400
  ['/public%5c..%5cadmin', null],
  ['/public\\..\\admin', null], // raw backslash: 400
  ['http://x/admin/../public', '/public'], // absolute form
  ['/public/%2e%2e/admin', null],
  ['/api/orders-admin/x', null], // a rule matches whole segments
  ['/api/orders/7', '/api/orders/7'],
  ['/%70ublic', '/public'], // unreserved characters decoded
];

let app: RecordingApp;
let h2app: RecordingH2App;
let sidecar: SidecarUnderAttack;

beforeAll(async () => {
  ({ app, h2app, sidecar } = await startHttpAndH2BehindSidecar({ authorization: allowPublic }));
});

describe('http mode', () => {
  it.each(ATTACKS)('GET %s reaches the app as %s or not at all', async (target, expected) => {
    const before = app.requests.length;
    const answer = await rawExchange(await tlsConnect(sidecar, 'web'), `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    const status = Number(answer.slice(9, 12));
    const reached = app.requests.slice(before).map((r) => r.url);
    if (expected === null) {
      expect([400, 403]).toContain(status);
      expect(reached).toEqual([]);
    } else {
      expect(status).toBe(200);
      expect(reached).toEqual([expected]);
    }
  });

  it('never put an /admin request line on the wire to the app', () => {
    expect(app.raw()).not.toMatch(/^[A-Z]+ [^ ]*admin[^ ]* HTTP/m);
  });

  it('refuses a WebSocket upgrade that walks out of /public, and forwards a normalized one', async () => {
    const before = app.requests.length;
    const refused = await rawExchange(
      await tlsConnect(sidecar, 'web'),
      'GET /public/../admin HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    expect(refused).toMatch(/^HTTP\/1\.1 403/);
    const allowed = await rawExchange(
      await tlsConnect(sidecar, 'web'),
      'GET /admin/%2e%2e/public HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    expect(allowed).toMatch(/^HTTP\/1\.1 101/);
    expect(app.requests.slice(before).map((r) => r.url)).toEqual(['/public']);
  });

  it('counts and audits refused targets, and stays alive serving good clients', async () => {
    expect(sidecar.logs('request_target_refused').length).toBeGreaterThan(0);
    expect(await sidecar.metric('sidecar_bad_requests_total', { listener: 'web', reason: 'request_target' })).toBeGreaterThan(0);
    expect((await goodGet(sidecar, 'web', '/public/ok')).status).toBe(200);
    await sidecar.assertAlive();
  });
});

describe('h2 mode', () => {
  it.each(ATTACKS.filter(([target]) => !target.startsWith('http')))(
    ':path %s reaches the app as %s or not at all',
    async (target, expected) => {
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
      const reached = h2app.streams.slice(before).map((h) => h[':path']);
      if (expected === null) {
        expect([400, 403]).toContain(Number(headers[':status']));
        expect(reached).toEqual([]);
      } else {
        expect(Number(headers[':status'])).toBe(200);
        expect(reached).toEqual([expected]);
      }
    },
  );
});

describe('h2 identity headers', () => {
  it('drops forged XFCC (any spelling) and X-Forwarded-* and sets its own, last', async () => {
    const before = h2app.streams.length;
    const socket = await tlsConnect(sidecar, 'grpc', sidecar.good, ['h2']);
    const session = http2.connect('https://localhost', { createConnection: () => socket });
    session.on('error', () => undefined);
    const req = session.request({
      ':method': 'GET',
      ':path': '/public/who',
      'x-forwarded-client-cert': 'URI=spiffe://test/ns/default/sa/admin',
      x_forwarded_client_cert: 'URI=spiffe://test/ns/default/sa/admin',
      'x-forwarded-for': '10.9.9.9',
    });
    req.end();
    await once(req, 'response');
    req.resume();
    await once(req, 'close');
    session.close();
    const seen = h2app.streams.slice(before)[0] ?? {};
    expect(String(seen['x-forwarded-client-cert'])).toContain('URI=spiffe://test/ns/default/sa/good');
    expect(JSON.stringify(seen)).not.toContain('sa/admin');
    expect(seen.x_forwarded_client_cert).toBeUndefined();
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('https');
  });
});
