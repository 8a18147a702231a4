/**
 * Defect 14: memory kept for every h2 session a listener has closed. An app that opens a channel
 * per call (or anything that can reach the outbound listener) made the outbound sidecar keep
 * ~2.5 KB per closed session — 18 → 135 MB heap after 40,000 — until the 256 Mi container was
 * OOM-killed; a caller killed mid-call left ~7.8 KB (its stream and the one relayed from it).
 * The sidecars run as the built CLI; their heap is measured after a full collection
 * (heap-probe.ts), once every session is closed.
 */
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { waitFor } from '../support/cli.js';
import { type HeapProbe, heapProbe, INSPECT_ENV, mb } from '../support/heap-probe.js';
import { TestPki } from '../support/pki.js';
import { headersFrame, PREFACE, settings } from './h2-frames.js';
import { type RecordingH2App, type SidecarUnderAttack, startRecordingH2App, startSidecarUnderAttack } from './harness.js';

/** Sessions opened and closed after the warm-up (H2_MEMORY_SESSIONS overrides). */
const SESSIONS = Number(process.env.H2_MEMORY_SESSIONS ?? 2000);
/** Sessions open at once: an app with a few concurrent calls. */
const CONCURRENCY = 16;
/**
 * What the live heap may grow by, whatever the count: before the fix 2,000 sessions kept 4.8 MB,
 * and 2,000 abandoned calls 14 MB. Lazily built state (JIT feedback, pools, metric series) stays
 * in it and is reached in the warm-up.
 */
const HEAP_GROWTH_BOUND = 2 * 1024 * 1024;

let app: RecordingH2App;
/** Answers each call after a while: long enough for its caller to be gone first. */
let slowApp: RecordingH2App;
let inbound: SidecarUnderAttack;
let outbound: SidecarUnderAttack;
let probe: HeapProbe;

beforeAll(async () => {
  app = await startRecordingH2App();
  slowApp = await startRecordingH2App(1000);
  const pki = TestPki.create('h2-memory');
  inbound = await startSidecarUnderAttack({
    pki,
    inbound: [
      { name: 'grpc', mode: 'h2', target: `127.0.0.1:${app.port}` },
      { name: 'slow', mode: 'h2', target: `127.0.0.1:${slowApp.port}` },
    ],
  });
  outbound = await startSidecarUnderAttack({
    pki,
    outbound: [
      { name: 'out', mode: 'h2', target: `127.0.0.1:${inbound.port('grpc')}`, serverName: 'localhost' },
      { name: 'slow-out', mode: 'h2', target: `127.0.0.1:${inbound.port('slow')}`, serverName: 'localhost' },
    ],
    env: INSPECT_ENV,
  });
  probe = await heapProbe(outbound.run);
});

afterAll(() => {
  probe?.close();
  app?.close();
  slowApp?.close();
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

/** `count` runs of `call`, `CONCURRENCY` at a time: how many returned true. */
async function repeat(count: number, call: () => Promise<boolean>): Promise<number> {
  let started = 0;
  let ok = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (started < count) {
        started++;
        if (await call()) ok++;
      }
    }),
  );
  return ok;
}

/** `count` calls, each on a new session: how many were answered 200. */
const sessionsOfOneCall = (port: number, count: number, path: string) =>
  repeat(count, async () => (await callOnNewSession(port, path)) === 200);

/**
 * A caller killed mid-call: a session with two calls in flight (one sent whole, one still
 * sending), then a TCP reset or — every other time — a FIN, before any answer. True once closed.
 */
function abandonCalls(port: number, reset: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(true));
    socket.resume();
    socket.write(
      Buffer.concat([PREFACE, settings(), headersFrame(1, '/abandoned.Whole/Call', true), headersFrame(3, '/abandoned.Half/Call', false)]),
    );
    setTimeout(() => (reset ? socket.resetAndDestroy() : socket.end()), 50);
  });
}

it(`keeps no memory for the h2 sessions it closed: ${SESSIONS} sessions of one call each`, { timeout: 90_000 }, async () => {
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

it(`keeps no memory for calls whose caller was killed mid-call: ${SESSIONS} sessions reset or ended with calls in flight`, {
  timeout: 90_000,
}, async () => {
  const port = outbound.port('slow-out');
  const idle = () => outbound.metric('sidecar_connections_active', { listener: 'slow-out' }).then((n) => n === 0);
  let resets = 0;
  const abandon = () => abandonCalls(port, resets++ % 2 === 0);
  await repeat(200, abandon);
  await waitFor(idle, 10_000, 'the warm-up sessions to close');
  const before = await probe.measure();

  expect(await repeat(SESSIONS, abandon)).toBe(SESSIONS);
  await waitFor(idle, 10_000, 'every session to close');
  // What reached the app was cancelled there too: no call is left waiting on it.
  await waitFor(
    () => slowApp.open() === 0,
    10_000,
    () => `the app's ${slowApp.open()} abandoned calls to be cancelled`,
  );
  const after = await probe.measure();

  const growth = after.heapUsed - before.heapUsed;
  expect(
    growth,
    `the outbound sidecar's live heap grew ${mb(growth)} (${Math.round(growth / SESSIONS)} B per abandoned session; ${mb(before.heapUsed)} → ${mb(after.heapUsed)}): streams of closed sessions are still referenced`,
  ).toBeLessThan(HEAP_GROWTH_BOUND);

  expect(await callOnNewSession(outbound.port('out'), '/after.Abandoned/Call')).toBe(200);
  await outbound.assertAlive();
  await inbound.assertAlive('grpc');
});
