/**
 * Messages an operator acts on: a revoked VAULT_TOKEN says the token is no longer valid and how to
 * avoid a restart next time (one line, not Vault's multi-line "permission denied"), and a
 * certificate without SANs is served with a warning that names what other clients will do.
 */
import { afterEach, expect, inject, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import { Sidecar } from '../../src/sidecar.js';
import { waitFor } from '../support/cli.js';
import { capturingLogger } from '../support/logs.js';
import { TestPki } from '../support/pki.js';
import { vaultApi } from '../support/vault-api.js';

const vault = inject('vault');
const running: Sidecar[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop(0)));
});

async function start(raw: Record<string, unknown>, env: Record<string, string> = {}) {
  const { logger, lines } = capturingLogger('debug');
  const sidecar = await Sidecar.create(buildConfig({ admin: { listen: '127.0.0.1:0' }, ...raw }, env), logger);
  running.push(sidecar);
  await sidecar.start();
  return { sidecar, lines };
}

it('says a revoked VAULT_TOKEN is no longer valid, in one line, and how to avoid the restart', async () => {
  const created = await vaultApi<{ auth: { client_token: string } }>(vault, 'POST', 'auth/token/create', {
    policies: ['sidecar'],
    ttl: '1h',
  });
  const { sidecar, lines } = await start(
    {
      vault: { address: vault.address, pki: { mount: vault.pkiMount, role: vault.role } },
      identity: { commonName: 'env-token.test', ttl: '10m', renewal: { minBackoff: '1s', maxBackoff: '2s' } },
    },
    { VAULT_TOKEN: created.auth.client_token },
  );
  await vaultApi(vault, 'POST', 'auth/token/revoke', { token: created.auth.client_token });
  expect(sidecar.renewer.renewNow()).toBe(true);
  await waitFor(() => lines.some((l) => l.code === 'SIDECAR_VAULT_AUTH_FAILED'), 10_000, 'the failed renewal');
  const line = lines.find((l) => l.code === 'SIDECAR_VAULT_AUTH_FAILED');
  expect(String(line?.msg)).toContain('the token from VAULT_TOKEN is no longer valid (revoked or expired)');
  expect(String(line?.msg)).toContain('vault.auth.tokenFile');
  expect(String(line?.msg)).not.toContain('\n');
  expect(String(line?.msg)).not.toContain("check the token's policies");
});

it('keeps saying "check the policies" when the token is valid but not allowed', async () => {
  const created = await vaultApi<{ auth: { client_token: string } }>(vault, 'POST', 'auth/token/create', {
    policies: ['default'],
    no_default_policy: false,
    ttl: '1h',
  });
  const { logger, lines } = capturingLogger('debug');
  const config = buildConfig(
    {
      vault: { address: vault.address, pki: { mount: vault.pkiMount, role: vault.role } },
      identity: { commonName: 'no-policy.test', ttl: '10m', renewal: { minBackoff: '1s', maxBackoff: '2s' } },
      admin: { listen: '127.0.0.1:0' },
      startupTimeout: '1s',
    },
    { VAULT_TOKEN: created.auth.client_token },
  );
  const sidecar = await Sidecar.create(config, logger);
  running.push(sidecar);
  void sidecar.start();
  await waitFor(() => lines.some((l) => l.code === 'SIDECAR_VAULT_PERMISSION_DENIED'), 10_000, 'the refused issue');
  const line = lines.find((l) => l.code === 'SIDECAR_VAULT_PERMISSION_DENIED');
  expect(String(line?.msg)).toContain("check the token's policies");
  expect(String(line?.msg)).not.toContain('\n');
  expect(line?.reason).toEqual({ reason: 'permission_denied', operation: 'issue', status: 403 });
});

it('warns when the certificate has no subject alternative names, and serves it', async () => {
  const pki = TestPki.create('nosan');
  const leaf = pki.leaf('cn-only', { cn: 'cn-only.test' });
  const { sidecar, lines } = await start({
    identity: { source: 'files', files: { cert: leaf.certFile, key: leaf.keyFile, ca: pki.ca.certFile } },
  });
  expect(sidecar.store.current()?.info.subject).toContain('cn-only.test');
  const warning = lines.find((l) => l.code === 'SIDECAR_CERT_NO_SAN');
  expect(String(warning?.msg)).toContain('Go, Java and browsers refuse it');
});
