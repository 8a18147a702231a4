/**
 * Defect 14: memory kept for every h2 session a listener has closed. An app that opens a channel
 * per call (or anything that can reach the outbound listener) made the outbound sidecar keep
 * ~2.5 KB per closed session — 18 → 135 MB heap after 40,000 — until the 256 Mi container was
 * OOM-killed. The sidecars run as the built CLI; their heap is measured after a full collection
 * (heap-probe.ts), once every session is closed.
 */
import http2 from 'node:http2';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { waitFor } from '../support/cli.js';
import { type HeapProbe, heapProbe, INSPECT_ENV, mb } from '../support/heap-probe.js';
import { TestPki } from '../support/pki.js';
import { type RecordingH2App, type SidecarUnderAttack, startRecordingH2App, startSidecarUnderAttack } from './harness.js';

/** Sessions opened and closed after the warm-up (H2_MEMORY_SESSIONS overrides). */
const SESSIONS = Number(process.env.H2_MEMORY_SESSIONS ?? 3000);
/** Sessions open at once: an app with a few concurrent calls. */
const CONCURRENCY = 16;
/**
 * What the live heap may grow by, whatever the count: before the fix 3,000 sessions kept 7 MB.
 * Lazily built state (JIT feedback, pools, metric series) stays in it and is reached in the warm-up.
 */
const HEAP_GROWTH_BOUND = 2 * 1024 * 1024;

let app: RecordingH2App;
let inbound: SidecarUnderAttack;
let outbound: SidecarUnderAttack;
let probe: HeapProbe;

beforeAll(async () => {
  app = await startRecordingH2App();
  const pki = TestPki.create('h2-memory');
  inbound = await startSidecarUnderAttack({ pki, inbound: [{ name: 'grpc', mode: 'h2', target: `127.0.0.1:${app.port}` }] });
  outbound = await startSidecarUnderAttack({
    pki,
    outbound: [{ name: 'out', mode: 'h2', target: `127.0.0.1:${inbound.port('grpc')}`, serverName: 'localhost' }],
    env: INSPECT_ENV,
  });
  probe = await heapProbe(outbound.run);
});

afterAll(() => {
  probe?.close();
  app?.close();
});

/** One call on a session of its own, closed after the answer: the status the caller got. */
function callOnNewSession(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    let status = 0;
    session.on('error', () => undefined);
    session.on('close', () => resolve(status));
    const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
    req.on('response', (headers) => {
      status = Number(headers[':status']);
    });
    req.on('error', () => undefined);
    req.resume();
    req.on('close', () => session.close());
    req.end('call');
  });
}

/** `count` calls, each on a new session, `CONCURRENCY` at a time: how many were answered 200. */
async function sessionsOfOneCall(port: number, count: number, path: string): Promise<number> {
  let started = 0;
  let ok = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (started < count) {
        started++;
        if ((await callOnNewSession(port, path)) === 200) ok++;
      }
    }),
  );
  return ok;
}

it(`keeps no memory for the h2 sessions it closed: ${SESSIONS} sessions of one call each`, async () => {
  const port = outbound.port('out');
  const idle = () => outbound.metric('sidecar_connections_active', { listener: 'out' }).then((n) => n === 0);
  // Warm-up: what the first sessions build once (code, pools, the session to the inbound sidecar).
  expect(await sessionsOfOneCall(port, 500, '/warm.Up/Call')).toBe(500);
  await waitFor(idle, 10_000, 'the warm-up sessions to close');
  const before = await probe.measure();

  const ok = await sessionsOfOneCall(port, SESSIONS, '/per.Session/Call');
  await waitFor(idle, 10_000, 'every session to close');
  const after = await probe.measure();

  // What the caller got: every call answered. What reached the app: each call, once.
  expect(ok).toBe(SESSIONS);
  expect(app.streams.filter((h) => h[':path'] === '/per.Session/Call')).toHaveLength(SESSIONS);
  const growth = after.heapUsed - before.heapUsed;
  expect(
    growth,
    `the outbound sidecar's live heap grew ${mb(growth)} (${Math.round(growth / SESSIONS)} B per closed session; ${mb(before.heapUsed)} → ${mb(after.heapUsed)}): closed sessions are still referenced`,
  ).toBeLessThan(HEAP_GROWTH_BOUND);

  // Still serving, on a new session and on the way in; both processes alive.
  expect(await callOnNewSession(port, '/after.Sessions/Call')).toBe(200);
  await outbound.assertAlive();
  await inbound.assertAlive('grpc');
});
