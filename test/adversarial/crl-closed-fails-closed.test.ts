/**
 * Issue 24, defect 2: `crl: closed` failed open. When every CRL read failed, or the first trust
 * fetch threw, the listeners bound with no CRL at all, OpenSSL checked no revocation, /readyz said
 * 200 and a revoked client was served. Here a real Vault sits behind a proxy that answers 500 for
 * the paths in question, and a revoked client knocks: refused, not ready, the reason logged — and
 * once Vault answers again, the good client is served and the revoked one still refused.
 * `crl: soft` keeps its documented behaviour: revocation unenforced while no CRL can be had, said.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { waitFor } from '../support/cli.js';
import { type IssuedCertificate, issueFromVault } from '../support/sidecars.js';
import { vaultApi } from '../support/vault-api.js';
import { startVaultProxy, type VaultProxy } from '../support/vault-proxy.js';
import { type RecordingApp, startRecordingApp } from './harness.js';
import { startVaultSidecar, type VaultSidecar } from './vault-sidecar.js';

const vault = inject('vault');
const CRL_PATHS = /\/crl(\/|\?|$)/;
const ISSUER_PATHS = /\/issuers?(\/|\?|$)/;

let app: RecordingApp;
let revoked: IssuedCertificate;
let good: IssuedCertificate;
const proxies: VaultProxy[] = [];

beforeAll(async () => {
  app = await startRecordingApp();
  revoked = await issueFromVault(vault, 'revoked.test', ['spiffe://test/ns/default/sa/revoked']);
  await vaultApi(vault, 'POST', `${vault.pkiMount}/revoke`, { serial_number: revoked.serial });
  good = await issueFromVault(vault, 'good.test', ['spiffe://test/ns/default/sa/good']);
});
afterAll(() => {
  app.close();
  for (const proxy of proxies) proxy.close();
});

async function sidecarBehind(failing: RegExp, crl: 'closed' | 'soft'): Promise<{ sidecar: VaultSidecar; proxy: VaultProxy }> {
  const proxy = await startVaultProxy(vault.address);
  proxies.push(proxy);
  proxy.fail(failing);
  const sidecar = await startVaultSidecar({
    vault: { address: proxy.address, pki: { mount: vault.pkiMount, role: vault.role, crl, refreshInterval: '5m' } },
    env: { VAULT_TOKEN: vault.rootToken },
    inbound: [{ name: 'web', target: `127.0.0.1:${app.port}` }],
  });
  return { sidecar, proxy };
}

/** The HTTP status `client` got, or 'refused' when the TLS connection was. */
const statusFor = (sidecar: VaultSidecar, client: IssuedCertificate) =>
  sidecar.get('web', client, vault.caPem, '/crl-test').then(
    (res) => res.status,
    () => 'refused' as const,
  );

const reachedApp = () => app.requests.filter((r) => r.url === '/crl-test').map((r) => String(r.headers['x-forwarded-client-cert']));

describe('crl: closed', () => {
  it('when every CRL read fails: a revoked client is refused, /readyz is 503 with the reason, the reason is logged', {
    timeout: 90_000,
  }, async () => {
    const { sidecar, proxy } = await sidecarBehind(CRL_PATHS, 'closed');
    const before = reachedApp().length;

    expect(await statusFor(sidecar, revoked)).toBe('refused');
    expect(reachedApp().slice(before).join()).not.toContain('sa/revoked');
    const ready = await sidecar.readyz();
    expect(ready.status).toBe(503);
    expect(ready.reasons.join('\n')).toMatch(/no CRL is loaded \(no CRL for .*HTTP 500.*\); every peer is refused until one is/);
    const warning = sidecar.logs().find((l) => l.code === 'SIDECAR_CRL_MISSING');
    expect(String(warning?.msg)).toMatch(/HTTP 500.*refused until one is loaded \(vault.pki.crl: closed\)/);
    expect(
      await sidecar.metric('sidecar_tls_handshake_failures_total', { listener: 'web', reason: 'crl_unavailable' }),
    ).toBeGreaterThanOrEqual(1);
    // Closed means no peer at all while revocation cannot be checked.
    expect(await statusFor(sidecar, good)).toBe('refused');
    expect(reachedApp().length).toBe(before);

    // Vault answers again: the CRL is retried on its own, the good client gets in, the revoked one never.
    proxy.fail(undefined);
    // The first retries come 1.5–15 s apart, then back off: within 45 s.
    await waitFor(async () => (await sidecar.readyz()).status === 200, 45_000, 'readiness once the CRL loads');
    expect(await statusFor(sidecar, good)).toBe(200);
    expect(await statusFor(sidecar, revoked)).toBe('refused');
    expect(await sidecar.metric('sidecar_tls_handshake_failures_total', { listener: 'web', reason: 'revoked' })).toBeGreaterThanOrEqual(1);
    expect(reachedApp().slice(before).join()).not.toContain('sa/revoked');
    await sidecar.assertAlive();
  });

  it('when the first trust fetch fails: not ready, every handshake refused, the reason logged', async () => {
    const { sidecar } = await sidecarBehind(ISSUER_PATHS, 'closed');
    const before = reachedApp().length;
    expect(await statusFor(sidecar, revoked)).toBe('refused');
    expect(await statusFor(sidecar, good)).toBe('refused');
    expect(reachedApp().length).toBe(before);
    const ready = await sidecar.readyz();
    expect(ready.status).toBe(503);
    expect(ready.reasons.join('\n')).toContain('the trust bundle has not been fetched yet');
    expect(ready.reasons.join('\n')).toContain('no CRL is loaded');
    expect(sidecar.logs().some((l) => l.code === 'SIDECAR_TRUST_REFRESH_FAILED')).toBe(true);
    await sidecar.assertAlive();
  });
});

describe('crl: soft, as documented', () => {
  it('when every CRL read fails: ready, serving, revocation unenforced until a CRL loads, and it says so', async () => {
    const { sidecar } = await sidecarBehind(CRL_PATHS, 'soft');
    expect((await sidecar.readyz()).status).toBe(200);
    expect(await statusFor(sidecar, good)).toBe(200);
    const warning = sidecar.logs().find((l) => l.code === 'SIDECAR_CRL_MISSING');
    expect(String(warning?.msg)).toContain('revocation is not enforced until every issuer has one (vault.pki.crl: soft)');
    await sidecar.assertAlive();
  });

  it('with its CRLs loaded: the revoked client is refused, the good one served', async () => {
    const { sidecar } = await sidecarBehind(/^$/, 'soft');
    expect(await statusFor(sidecar, good)).toBe(200);
    expect(await statusFor(sidecar, revoked)).toBe('refused');
    await sidecar.assertAlive();
  });
});
