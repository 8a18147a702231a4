/**
 * Issue 24, defect 10: strangers could make every sidecar re-read Vault. A handshake with a
 * self-signed certificate (anybody can make one) triggered a full fetch of the issuers and CRLs,
 * up to every 5 s per sidecar — a fleet-wide load on Vault that any pod could cause. Now such a
 * handshake fetches nothing: at most it brings the cheap issuer check (one LIST) forward, once per
 * 30 s, and the full fetch follows only when the mount's issuers really changed (an issuer
 * rotation, see test/integration/issuer-rotation.test.ts).
 */
import tls from 'node:tls';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { TestPki } from '../support/pki.js';
import { issueFromVault } from '../support/sidecars.js';
import { startVaultProxy, type VaultProxy } from '../support/vault-proxy.js';
import { type RecordingApp, startRecordingApp } from './harness.js';
import { startVaultSidecar, type VaultSidecar } from './vault-sidecar.js';

const vault = inject('vault');

let app: RecordingApp;
let proxy: VaultProxy;
let sidecar: VaultSidecar;

beforeAll(async () => {
  app = await startRecordingApp();
  proxy = await startVaultProxy(vault.address);
  sidecar = await startVaultSidecar({
    // The issuer check is slower than the hint bound, so a hint could add a call if any does.
    vault: { address: proxy.address, pki: { mount: vault.pkiMount, role: vault.role, issuerCheckInterval: '5m' } },
    env: { VAULT_TOKEN: vault.rootToken },
    inbound: [{ name: 'web', target: `127.0.0.1:${app.port}` }],
  });
});
afterAll(() => {
  app.close();
  proxy.close();
});

/** One handshake with a certificate of its own making, as any stranger can. */
function strangerHandshake(stranger: { cert: string; key: string }): Promise<void> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port: sidecar.port('web'), ...stranger, ca: vault.caPem, servername: 'localhost' });
    socket.on('error', () => undefined);
    socket.once('secureConnect', () => socket.write('GET /stranger HTTP/1.1\r\nHost: x\r\n\r\n'));
    socket.once('close', () => resolve());
  });
}

it('a flood of handshakes from unknown CAs makes no trust fetch: at most one issuer LIST', { timeout: 60_000 }, async () => {
  const before = proxy.seen.length;
  // 200 strangers, each with its own self-signed CA, spread over about 8 s.
  for (let round = 0; round < 8; round++) {
    const stranger = TestPki.create(`stranger-${round}`).leaf('client', { cn: 'stranger.test', uris: ['spiffe://test/ns/admin/sa/admin'] });
    await Promise.all(Array.from({ length: 25 }, () => strangerHandshake(stranger)));
    await new Promise((r) => setTimeout(r, 1000));
  }

  const caused = proxy.seen.slice(before);
  expect(
    caused.filter((line) => /\/issuer\/[^/]+\/(json|crl)|\/crl/.test(line)),
    caused.join('\n'),
  ).toEqual([]);
  expect(caused.filter((line) => /\/issuers/.test(line)).length, caused.join('\n')).toBeLessThanOrEqual(1);
  expect(app.requests.some((r) => r.url === '/stranger')).toBe(false);
  expect(await sidecar.metric('sidecar_tls_handshake_failures_total', { listener: 'web', reason: 'unknown_ca' })).toBeGreaterThanOrEqual(
    200,
  );
});

it('still serves a client from the mount, and is alive and ready', async () => {
  const client = await issueFromVault(vault, 'client.test', ['spiffe://test/ns/default/sa/client']);
  expect((await sidecar.get('web', client, vault.caPem)).status).toBe(200);
  expect((await sidecar.readyz()).status).toBe(200);
  await sidecar.assertAlive();
});
