/**
 * Defect 4: a client could remove or forge the identity the app sees. Each attempt below is
 * checked on the bytes that reached the app: exactly one XFCC header, ours; no underscore
 * spelling of it; X-Forwarded-* replaced, not appended; Host kept.
 */
import { beforeAll, expect, it } from 'vitest';
import { type RecordingApp, rawExchange, type SidecarUnderAttack, startAppBehindSidecar, tlsConnect } from './harness.js';

let app: RecordingApp;
let sidecar: SidecarUnderAttack;

beforeAll(async () => {
  ({ app, sidecar } = await startAppBehindSidecar({}, {}));
});

/** Sends one request with `headers` and returns the raw header lines the app received for it. */
async function reachedApp(headers: string): Promise<string[]> {
  const before = app.raw().length;
  const answer = await rawExchange(
    await tlsConnect(sidecar, 'web'),
    `GET /who HTTP/1.1\r\nHost: svc.test\r\n${headers}Connection: close\r\n\r\n`,
  );
  expect(answer).toMatch(/^HTTP\/1\.1 200/);
  const request = app.raw().slice(before);
  return request.split('\r\n\r\n')[0]?.split('\r\n').slice(1) ?? [];
}

const named = (lines: string[], name: string) => lines.filter((l) => l.toLowerCase().startsWith(`${name}:`));

it('keeps its XFCC when the client names it in Connection', async () => {
  const lines = await reachedApp('Connection: x-forwarded-client-cert, host, x-forwarded-for\r\n');
  const xfcc = named(lines, 'x-forwarded-client-cert');
  expect(xfcc).toHaveLength(1);
  expect(xfcc[0]).toContain('URI=spiffe://test/ns/default/sa/good');
  expect(named(lines, 'host')).toEqual(['host: svc.test']);
  expect(named(lines, 'x-forwarded-for')).toEqual(['x-forwarded-for: 127.0.0.1']);
});

it('replaces a forged XFCC, and drops its underscore spelling', async () => {
  const lines = await reachedApp(
    'X-Forwarded-Client-Cert: Hash=0;URI=spiffe://test/ns/default/sa/admin\r\nX_Forwarded_Client_Cert: URI=spiffe://test/ns/default/sa/admin\r\nClient_Cert: :AAAA:\r\n',
  );
  expect(lines.join('\n')).not.toContain('sa/admin');
  expect(lines.some((l) => l.toLowerCase().startsWith('x_forwarded'))).toBe(false);
  expect(lines.some((l) => l.toLowerCase().startsWith('client_cert'))).toBe(false);
  expect(named(lines, 'x-forwarded-client-cert')[0]).toContain('sa/good');
});

it("replaces the client's X-Forwarded-For/-Proto/-Port/-Host instead of appending to them", async () => {
  const lines = await reachedApp(
    'X-Forwarded-For: 10.9.9.9\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 1\r\nX-Forwarded-Host: evil.test\r\n',
  );
  expect(named(lines, 'x-forwarded-for')).toEqual(['x-forwarded-for: 127.0.0.1']);
  expect(named(lines, 'x-forwarded-proto')).toEqual(['x-forwarded-proto: https']);
  expect(named(lines, 'x-forwarded-port')).toEqual([`x-forwarded-port: ${sidecar.port('web')}`]);
  expect(named(lines, 'x-forwarded-host')).toEqual(['x-forwarded-host: svc.test']);
});

it('sets its own identity headers on a WebSocket upgrade, whatever the client sent', async () => {
  const before = app.requests.length;
  const answer = await rawExchange(
    await tlsConnect(sidecar, 'web'),
    'GET /ws HTTP/1.1\r\nHost: svc.test\r\nConnection: Upgrade, x-forwarded-client-cert\r\nUpgrade: websocket\r\n' +
      'X-Forwarded-Client-Cert: URI=spiffe://test/ns/default/sa/admin\r\nX_Forwarded_Client_Cert: URI=spiffe://x/admin\r\n' +
      'X-Forwarded-For: 10.9.9.9\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
  );
  expect(answer).toMatch(/^HTTP\/1\.1 101/);
  const seen = app.requests.slice(before)[0];
  expect(seen?.headers['x-forwarded-client-cert']).toContain('sa/good');
  expect(JSON.stringify(seen?.rawHeaders)).not.toContain('admin');
  expect(seen?.headers['x-forwarded-for']).toBe('127.0.0.1');
  expect(seen?.headers.connection).toBe('Upgrade');
});
