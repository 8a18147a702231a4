/**
 * Audit lines were rate-limited per event name: a flood of handshakes without a certificate (any
 * scanner) used up `tls_handshake_rejected`'s budget, and the lines that matter — a revoked
 * certificate, a CA certificate presented as a leaf — were held back with them. Now each reason
 * has its own budget: the flood is cut to a few lines, and the rare reasons are logged at once.
 */
import tls from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { goodGet, type RecordingApp, type SidecarUnderAttack, startAppBehindSidecar } from './harness.js';

let app: RecordingApp;
let sidecar: SidecarUnderAttack;

beforeAll(async () => {
  ({ app, sidecar } = await startAppBehindSidecar());
});

afterAll(() => app.close());

/** A TLS client with `pem` (or no certificate); resolves when the server has closed it. */
async function handshake(pem?: { cert: string; key: string }): Promise<void> {
  const socket = tls.connect({
    host: '127.0.0.1',
    port: sidecar.port('web'),
    ca: sidecar.pki.ca.cert,
    servername: 'localhost',
    ...(pem ? { cert: pem.cert, key: pem.key } : {}),
  });
  socket.on('error', () => undefined);
  socket.on('secureConnect', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  socket.resume();
  // Not events.once: it rejects on the 'error' every refused handshake emits.
  await new Promise((resolve) => socket.on('close', resolve));
}

it('logs a CA certificate as a leaf and a not-yet-valid one in the middle of a flood of handshakes without a certificate', async () => {
  const caAsLeaf = sidecar.pki.leaf('ca-as-leaf', { cn: 'sneaky', caTrue: true });
  const early = await sidecar.pki.notYetValid('not-yet-valid', 'early.test');
  // The flood runs all along (far above the 2 lines/s the log lets through), before and while the
  // rare handshakes happen, so their event's budget is spent when they come.
  let flooding = true;
  let rounds = 0;
  const flood = (async () => {
    for (; flooding; rounds++) await Promise.all(Array.from({ length: 10 }, () => handshake()));
  })();
  while (rounds < 5) await new Promise((r) => setTimeout(r, 20));
  await handshake(caAsLeaf);
  await handshake(early);
  flooding = false;
  await flood;

  const noCertificate = sidecar.logs('tls_handshake_rejected').filter((l) => l.reason === 'no_certificate');
  expect(noCertificate.length).toBeGreaterThan(0);
  expect(noCertificate.length).toBeLessThan(60); // the flood itself is still rate-limited
  const reasons = () => sidecar.logs('tls_handshake_rejected').map((l) => l.reason);
  for (let i = 0; i < 50 && !(reasons().includes('ca_as_leaf') && reasons().includes('not_yet_valid')); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(reasons()).toContain('ca_as_leaf');
  expect(reasons()).toContain('not_yet_valid');
  // Nothing reached the app, and the metrics counted every one.
  expect(app.requests).toEqual([]);
  expect(await sidecar.metric('sidecar_tls_handshake_failures_total', { listener: 'web', reason: 'no_certificate' })).toBeGreaterThan(
    noCertificate.length,
  );
});

it('keeps serving good clients and stays alive', async () => {
  expect((await goodGet(sidecar, 'web', '/ok')).status).toBe(200);
  await sidecar.assertAlive('web');
});
