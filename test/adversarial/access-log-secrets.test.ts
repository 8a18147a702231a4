/**
 * The access log recorded query strings — where tokens and API keys travel in URLs — and h2 lines
 * logged the raw `:path` the client sent, not the path that was authorized and forwarded. Now a
 * line carries the path alone (normalized, as forwarded, on inbound listeners), and a refused
 * target's audit line carries no query either.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import {
  goodGet,
  h2Get,
  type RecordingApp,
  type RecordingH2App,
  rawExchange,
  type SidecarUnderAttack,
  startHttpAndH2BehindSidecar,
  tlsConnect,
} from './harness.js';

const SECRET = 'tok3n-s3cr3t-value';

let app: RecordingApp;
let h2app: RecordingH2App;
let sidecar: SidecarUnderAttack;

beforeAll(async () => {
  ({ app, h2app, sidecar } = await startHttpAndH2BehindSidecar({ accessLog: true }));
});

/** The access lines of `listener` so far. */
const accessLines = (listener: string) => sidecar.logs('access').filter((l) => l.listener === listener);

/** Waits until `listener` has more than `count` access lines (they are written when the exchange ends). */
async function nextAccessLine(listener: string, count: number): Promise<Record<string, unknown>> {
  for (let i = 0; i < 50 && accessLines(listener).length <= count; i++) await new Promise((r) => setTimeout(r, 50));
  const line = accessLines(listener)[count];
  if (!line) throw new Error(`no access line for ${listener}`);
  return line;
}

describe('http mode', () => {
  it('logs the path without the query, and the app still gets the query', async () => {
    const count = accessLines('web').length;
    expect((await goodGet(sidecar, 'web', `/api/orders/../items?access_token=${SECRET}&x=1`)).status).toBe(200);
    const line = await nextAccessLine('web', count);
    expect(line.path).toBe('/api/items');
    expect(app.requests.at(-1)?.url).toBe(`/api/items?access_token=${SECRET}&x=1`);
  });

  it('keeps the query of a refused target out of the audit line', async () => {
    const before = sidecar.logs('request_target_refused').length;
    const answer = await rawExchange(
      await tlsConnect(sidecar, 'web'),
      `GET /a%2fb?access_token=${SECRET} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    // The audit line is written as the 400 goes out: on a loaded machine it can trail the answer.
    const refused = await vi.waitFor(() => {
      const line = sidecar.logs('request_target_refused')[before];
      if (!line) throw new Error('no request_target_refused line yet');
      return line;
    });
    expect(refused.detail).toBe('/a%2fb');
  });

  it.each([
    // A servlet session id in a ; path parameter (refused: requestPath.semicolons is reject).
    [`/public;jsessionid=${SECRET}/x?q=1`, '/public;/x'],
    [`/a%3Bjsessionid=${SECRET}/b`, '/a%3B/b'],
    // A password in the absolute form's userinfo (refused for its encoded slash).
    [`http://user:${SECRET}@app.test/a%2fb`, 'http://app.test/a%2fb'],
  ])('keeps the session id or password of refused target %s out of the audit and access lines', async (target, logged) => {
    const count = accessLines('web').length;
    const refusedBefore = sidecar.logs('request_target_refused').length;
    const before = app.requests.length;
    const answer = await rawExchange(await tlsConnect(sidecar, 'web'), `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    expect(app.requests.slice(before)).toEqual([]);
    // The audit line is written as the 400 goes out: on a loaded machine it can trail the answer.
    const refused = await vi.waitFor(() => {
      const line = sidecar.logs('request_target_refused')[refusedBefore];
      if (!line) throw new Error('no request_target_refused line yet');
      return line;
    });
    expect(refused.detail).toBe(logged);
    // The previous test's line may land after `count` was taken: look for this request's line.
    for (
      let i = 0;
      i < 50 &&
      !accessLines('web')
        .slice(count)
        .some((l) => l.path === logged);
      i++
    )
      await new Promise((r) => setTimeout(r, 50));
    expect(
      accessLines('web')
        .slice(count)
        .map((l) => l.path),
    ).toContain(logged);
    expect(sidecar.run.stdout()).not.toContain(SECRET);
  });
});

describe('h2 mode', () => {
  it('logs the authorized, normalized path without the query, not the raw :path', async () => {
    const count = accessLines('grpc').length;
    const socket = await tlsConnect(sidecar, 'grpc', sidecar.good, ['h2']);
    const session = http2.connect('https://localhost', { createConnection: () => socket });
    session.on('error', () => undefined);
    const req = session.request({ ':method': 'GET', ':path': `/svc/%2e%2e/Orders//List?api_key=${SECRET}` });
    req.end();
    const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
    req.resume();
    await once(req, 'close');
    session.close();
    expect(Number(headers[':status'])).toBe(200);
    const line = await nextAccessLine('grpc', count);
    expect(line.path).toBe('/Orders/List');
    expect(h2app.streams.at(-1)?.[':path']).toBe(`/Orders/List?api_key=${SECRET}`);
  });
});

describe('h2 mode, refused', () => {
  it('keeps a session id in a refused :path out of the audit and access lines', async () => {
    const count = accessLines('grpc').length;
    const before = h2app.streams.length;
    const socket = await tlsConnect(sidecar, 'grpc', sidecar.good, ['h2']);
    const session = http2.connect('https://localhost', { createConnection: () => socket });
    session.on('error', () => undefined);
    const req = session.request({ ':method': 'GET', ':path': `/svc;jsessionid=${SECRET}/List` });
    req.end();
    const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
    req.resume();
    await once(req, 'close');
    session.close();
    expect(Number(headers[':status'])).toBe(400);
    expect(h2app.streams.slice(before)).toEqual([]);
    expect((await nextAccessLine('grpc', count)).path).toBe('/svc;/List');
    expect(sidecar.logs('request_target_refused').at(-1)?.detail).toBe('/svc;/List');
  });
});

it('never writes the secret to any log line, and keeps serving', async () => {
  expect(sidecar.run.stdout()).not.toContain(SECRET);
  expect(sidecar.run.stderr()).not.toContain(SECRET);
  expect((await goodGet(sidecar, 'web', '/ok')).status).toBe(200);
  expect((await h2Get(sidecar, 'grpc', '/ok')).status).toBe(200);
  await sidecar.assertAlive('web');
});
