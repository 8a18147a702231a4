/**
 * Issue 24, defect 9: Vault's issuance response could add trust anchors. The `ca_chain` that came
 * with the sidecar's certificate both checked that certificate and became CAs trusted for peers,
 * so whatever answered the issuance (a proxy, a tampered mount, a response rewritten on the way)
 * could make the sidecar trust a CA the mount never listed. Here a proxy in front of a real Vault
 * adds a rogue CA to `ca_chain`; a client from that CA knocks: refused, the app receives nothing,
 * and a client from the mount's own issuer is still served.
 */
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { TestPki } from '../support/pki.js';
import { issueFromVault } from '../support/sidecars.js';
import { startVaultProxy, type VaultProxy } from '../support/vault-proxy.js';
import { type RecordingApp, startRecordingApp } from './harness.js';
import { startVaultSidecar, type VaultSidecar } from './vault-sidecar.js';

const vault = inject('vault');
const rogue = TestPki.create('rogue');

let app: RecordingApp;
let proxy: VaultProxy;
let sidecar: VaultSidecar;

beforeAll(async () => {
  app = await startRecordingApp();
  proxy = await startVaultProxy(vault.address);
  // The issuance answer carries one more CA than the mount has: the attacker's.
  proxy.rewrite(/\/(sign|issue)\//, (body) => {
    const data = body.data as { ca_chain?: string[] };
    return { ...body, data: { ...data, ca_chain: [...(data.ca_chain ?? []), rogue.ca.cert] } };
  });
  sidecar = await startVaultSidecar({
    vault: { address: proxy.address, pki: { mount: vault.pkiMount, role: vault.role } },
    env: { VAULT_TOKEN: vault.rootToken },
    inbound: [{ name: 'web', target: `127.0.0.1:${app.port}` }],
  });
});
afterAll(() => {
  app.close();
  proxy.close();
});

it('refuses a client from a CA that only the issuance response named; the app receives nothing', async () => {
  // The rewrite was applied: the sidecar's certificate came through the tampered answer.
  expect(proxy.seen.some((line) => /\/sign\//.test(line))).toBe(true);
  const intruder = rogue.leaf('intruder', { cn: 'intruder.test', uris: ['spiffe://test/ns/admin/sa/admin'] });

  const status = await sidecar.get('web', intruder, vault.caPem).then(
    (res) => res.status,
    () => 'refused',
  );

  expect(status).toBe('refused');
  expect(app.raw()).not.toContain('sa/admin');
  expect(await sidecar.metric('sidecar_tls_handshake_failures_total', { listener: 'web', reason: 'unknown_ca' })).toBeGreaterThanOrEqual(1);
});

it('still serves a client from the mount’s own issuer, and is alive and ready', async () => {
  const client = await issueFromVault(vault, 'client.test', ['spiffe://test/ns/default/sa/client']);
  const res = await sidecar.get('web', client, vault.caPem);
  expect(res.status).toBe(200);
  expect(app.requests.at(-1)?.headers['x-forwarded-client-cert']).toContain('sa/client');
  expect((await sidecar.readyz()).status).toBe(200);
  await sidecar.assertAlive();
});
