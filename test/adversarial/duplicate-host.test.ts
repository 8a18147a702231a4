/**
 * A request with two Host headers was forwarded (Node keeps the first and drops the rest, so the
 * sidecar and anything that reads the last one disagree on the virtual host). RFC 9112 §3.2: a
 * server MUST answer 400 to a request with more than one Host. Also for a WebSocket upgrade.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { goodGet, type RecordingApp, rawExchange, type SidecarUnderAttack, startAppBehindSidecar, tlsConnect } from './harness.js';

let app: RecordingApp;
let sidecar: SidecarUnderAttack;

beforeAll(async () => {
  ({ app, sidecar } = await startAppBehindSidecar({
    authorization: { allow: [{ spiffe: 'spiffe://test/ns/default/sa/good', paths: ['/public'] }] },
  }));
});

afterAll(() => app.close());

describe('two Host headers', () => {
  it.each([
    ['different values', 'Host: app.test\r\nHost: admin.internal\r\n'],
    ['the same value', 'Host: app.test\r\nHost: app.test\r\n'],
    ['different spellings', 'Host: app.test\r\nhOsT: admin.internal\r\n'],
  ])('are a 400 and never reach the app (%s)', async (_, hosts) => {
    const before = app.requests.length;
    const answer = await rawExchange(await tlsConnect(sidecar, 'web'), `GET /public/x HTTP/1.1\r\n${hosts}\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    expect(answer).toContain('SIDECAR_BAD_REQUEST');
    expect(answer.toLowerCase()).toContain('connection: close');
    expect(app.requests.slice(before)).toEqual([]);
  });

  it('are a 400 on a WebSocket upgrade', async () => {
    const before = app.requests.length;
    const answer = await rawExchange(
      await tlsConnect(sidecar, 'web'),
      'GET /public/ws HTTP/1.1\r\nHost: app.test\r\nHost: admin.internal\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    expect(app.requests.slice(before)).toEqual([]);
  });
});

it('audits and counts them, and keeps serving good clients', async () => {
  expect(sidecar.logs('request_header_refused').some((l) => String(l.reason).includes('Host'))).toBe(true);
  expect(await sidecar.metric('sidecar_bad_requests_total', { listener: 'web', reason: 'request_headers' })).toBeGreaterThan(0);
  expect(app.raw()).not.toContain('admin.internal');
  expect((await goodGet(sidecar, 'web', '/public/ok')).status).toBe(200);
  await sidecar.assertAlive();
});
