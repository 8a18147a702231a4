/**
 * Defect 3, second half: an authenticated client trickling 260 request bodies held every
 * connection of the pool to the app, and nothing timed a body out. Now the pool is as large as
 * the listener's connection limit (a client can only hold its own share), a stalled body is cut
 * after bodyIdleTimeout and a trickling one after requestTimeout — each counted and logged.
 */
import { once } from 'node:events';
import type tls from 'node:tls';
import { beforeAll, expect, it } from 'vitest';
import { goodGet, type RecordingApp, type SidecarUnderAttack, startAppBehindSidecar, tlsConnect } from './harness.js';

let app: RecordingApp;
let sidecar: SidecarUnderAttack;

beforeAll(async () => {
  ({ app, sidecar } = await startAppBehindSidecar(
    { limits: { maxConnections: 400, headersTimeout: '5s', bodyIdleTimeout: '1s', requestTimeout: '6s' } },
    {},
  ));
});

function startSlowUpload(socket: tls.TLSSocket, path: string): void {
  socket.on('error', () => undefined);
  socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n`);
}

it('serves good clients while 260 bodies trickle in, then cuts the trickles at requestTimeout', async () => {
  const slow = await Promise.all(Array.from({ length: 260 }, () => tlsConnect(sidecar, 'web')));
  for (const [i, s] of slow.entries()) startSlowUpload(s, `/trickle/${i}`);
  // A byte every 400 ms: never idle for bodyIdleTimeout, so only requestTimeout ends them.
  const trickle = setInterval(() => {
    for (const s of slow) if (!s.destroyed) s.write('x');
  }, 400);
  try {
    for (let i = 0; i < 5; i++) expect((await goodGet(sidecar, 'web', `/good/${i}`)).status).toBe(200);
    // Not once(): a trickle write after the cut fails with EPIPE, which once() would reject on.
    await Promise.all(slow.map((s) => new Promise((resolve) => (s.destroyed ? resolve(undefined) : s.once('close', resolve)))));
  } finally {
    clearInterval(trickle);
  }
  // No trickled body ever reached the app complete.
  expect(app.requests.filter((r) => r.url.startsWith('/trickle/'))).toEqual([]);
  expect(await sidecar.metric('sidecar_bad_requests_total', { listener: 'web', reason: 'request_timeout' })).toBeGreaterThanOrEqual(260);
  await sidecar.assertAlive('web');
}, 30_000);

it('cuts a body that stalls for bodyIdleTimeout, counted and logged', async () => {
  const socket = await tlsConnect(sidecar, 'web');
  startSlowUpload(socket, '/stalled');
  socket.write('only this');
  const started = Date.now();
  await once(socket, 'close');
  expect(Date.now() - started).toBeLessThan(3500);
  expect(await sidecar.metric('sidecar_bad_requests_total', { listener: 'web', reason: 'body_timeout' })).toBeGreaterThanOrEqual(1);
  expect(sidecar.logs('bad_request').some((l) => l.reason === 'body_timeout')).toBe(true);
  await sidecar.assertAlive('web');
});
