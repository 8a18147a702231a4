/**
 * Defect 5: POST /rotate had no authentication and no throttle, and the example deployment bound
 * the admin server to 0.0.0.0, so any pod could force unlimited Vault issuance. Now the admin
 * server may listen on the pod IP for probes, but /rotate answers loopback callers only, and at
 * most once per admin.rotateMinInterval.
 */
import { networkInterfaces } from 'node:os';
import { beforeAll, expect, it } from 'vitest';
import { type SidecarUnderAttack, startSidecarUnderAttack } from './harness.js';

/** An address of this machine that is not loopback: what another pod's packets look like. */
function podAddress(): string {
  const address = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
  if (!address) throw new Error('this test needs a non-loopback IPv4 interface to call from');
  return address;
}

let sidecar: SidecarUnderAttack;

beforeAll(async () => {
  sidecar = await startSidecarUnderAttack({
    inbound: [{ name: 'web', target: '127.0.0.1:1' }],
    extra: { admin: { listen: '0.0.0.0:0', rotateMinInterval: '30s' } },
  });
});

it('serves probes and metrics on the pod address', async () => {
  const base = `http://${podAddress()}:${sidecar.adminPort}`;
  expect((await fetch(`${base}/healthz`)).status).toBe(200);
  expect((await fetch(`${base}/readyz`)).status).toBe(200);
  expect((await fetch(`${base}/metrics`)).status).toBe(200);
});

it('refuses POST /rotate from outside the pod with 403 and a code', async () => {
  const res = await fetch(`http://${podAddress()}:${sidecar.adminPort}/rotate`, { method: 'POST' });
  expect(res.status).toBe(403);
  expect(((await res.json()) as { error: { code: string } }).error.code).toBe('SIDECAR_ADMIN_FORBIDDEN');
});

it('rotates for a loopback caller, then throttles with 429 and Retry-After', async () => {
  const rotate = () => fetch(`http://127.0.0.1:${sidecar.adminPort}/rotate`, { method: 'POST' });
  expect((await rotate()).status).toBe(202);
  for (let i = 0; i < 20; i++) {
    const res = await rotate();
    expect(res.status).toBe(429);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('SIDECAR_ROTATE_THROTTLED');
  }
  await sidecar.assertAlive();
});
