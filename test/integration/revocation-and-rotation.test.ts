import { expect, inject, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import { Sidecar } from '../../src/sidecar.js';
import { waitFor } from '../support/cli.js';
import { useEchoApp, usePrivateVaults } from '../support/fixtures.js';
import { capturingLogger } from '../support/logs.js';
import { parsePrometheus, sampleValue } from '../support/prometheus.js';
import { httpsRequest, issueFromVault, startSidecar } from '../support/sidecars.js';
import { vaultApi } from '../support/vault-api.js';

const shared = inject('vault');
const echo = useEchoApp();
const startPrivateVault = usePrivateVaults(shared.bin);
const privateVault = async () => (await startPrivateVault()).vault;

function sidecarConfig(vault: { address: string; pkiMount: string; role: string }, name: string) {
  return {
    vault: { address: vault.address, pki: { mount: vault.pkiMount, role: vault.role, refreshInterval: '1s' } },
    identity: { commonName: `${name}.test`, dnsNames: ['localhost'], ttl: '10m' },
    inbound: [{ name: 'app', listen: '127.0.0.1:0', target: `127.0.0.1:${echo.port()}` }],
  };
}

it('refuses a client certificate revoked in Vault at its next handshake after a CRL refresh', async () => {
  const vault = await privateVault();
  const sidecar = await startSidecar(sidecarConfig(vault, 'crl'), { VAULT_TOKEN: 'root' });
  const port = sidecar.listenerAddress('app').port;
  const client = await issueFromVault(vault, 'soon-revoked.test');
  const bystander = await issueFromVault(vault, 'bystander.test');
  expect((await httpsRequest(port, client)).status).toBe(200);

  const fetchedBefore = sidecar.trust.crl?.fetchedAt.getTime() ?? 0;
  await vaultApi(vault, 'POST', `${vault.pkiMount}/revoke`, { serial_number: client.serial });
  await waitFor(() => (sidecar.trust.crl?.fetchedAt.getTime() ?? 0) > fetchedBefore + 1000, 10_000, 'a CRL refresh');

  await expect(httpsRequest(port, client)).rejects.toThrow();
  expect((await httpsRequest(port, bystander)).status).toBe(200);
  const samples = parsePrometheus(await sidecar.metrics.text());
  expect(sampleValue(samples, 'sidecar_tls_handshake_failures_total', { listener: 'app', reason: 'revoked' })).toBe(1);
  expect(sampleValue(samples, 'sidecar_crl_age_seconds')).toBeLessThan(5);
});

it('keeps handshakes succeeding while the PKI issuer rotates', { timeout: 30_000 }, async () => {
  const vault = await privateVault();
  const sidecar = await startSidecar(sidecarConfig(vault, 'rotating-ca'), { VAULT_TOKEN: 'root' });
  const port = sidecar.listenerAddress('app').port;
  const oldCa = vault.caPem;
  const oldClient = await issueFromVault(vault, 'old-client.test');

  // Rotate: a new root issuer becomes the mount's default; the old one stays on the mount.
  const rotated = await vaultApi<{ data: { issuer_id: string; certificate: string } }>(
    vault,
    'POST',
    `${vault.pkiMount}/root/rotate/internal`,
    {
      common_name: 'vault-mtls-sidecar test root (rotated)',
      ttl: '87600h',
      key_type: 'ec',
      key_bits: 256,
    },
  );
  await vaultApi(vault, 'POST', `${vault.pkiMount}/root/replace`, { default: rotated.data.issuer_id });
  const newCa = rotated.data.certificate;
  const bothCas = `${oldCa}\n${newCa}`;
  const newClient = await issueFromVault(vault, 'new-client.test');
  expect(newClient.ca.trim()).toBe(newCa.trim());

  // Once the sidecar has refreshed its trust bundle, a client from the new issuer gets in,
  // while the sidecar still presents its certificate from the old one.
  await waitFor(() => sidecar.trust.material.caPems.length === 2, 10_000, 'the trust bundle to hold both issuers');
  expect((await httpsRequest(port, { ...newClient, ca: bothCas })).status).toBe(200);
  expect((await httpsRequest(port, { ...oldClient, ca: bothCas })).status).toBe(200);

  // The sidecar renews onto the new issuer; clients from either issuer keep getting in.
  const serial = sidecar.store.current()?.info.serial;
  sidecar.renewer.renewNow();
  await waitFor(() => sidecar.store.current()?.info.serial !== serial, 10_000, 'the renewal onto the new issuer');
  expect(sidecar.store.current()?.info.issuer).toContain('(rotated)');
  expect((await httpsRequest(port, { ...oldClient, ca: bothCas })).status).toBe(200);
  expect((await httpsRequest(port, { ...newClient, ca: bothCas })).status).toBe(200);
});

it('with a CRL past its nextUpdate: soft mode stops enforcing it and says so, closed mode refuses and is not ready', async () => {
  const vault = await privateVault();
  await vaultApi(vault, 'POST', `${vault.pkiMount}/config/crl`, { expiry: '1s', auto_rebuild: false });
  await vaultApi(vault, 'GET', `${vault.pkiMount}/crl/rotate`);
  await new Promise((r) => setTimeout(r, 2000));
  const client = await issueFromVault(vault, 'caller.test');

  const { logger, lines } = capturingLogger();
  const soft = await Sidecar.create(
    buildConfig({ ...sidecarConfig(vault, 'soft'), admin: { listen: '127.0.0.1:0' } }, { VAULT_TOKEN: 'root' }),
    logger,
  );
  await soft.start();
  expect(lines.some((l) => l.code === 'SIDECAR_CRL_STALE')).toBe(true);
  expect((await httpsRequest(soft.listenerAddress('app').port, client)).status).toBe(200);
  expect(soft.notReadyReasons()).toEqual([]);
  await soft.stop(0);

  const closedConfig = sidecarConfig(vault, 'closed');
  const closed = await startSidecar(
    { ...closedConfig, vault: { ...closedConfig.vault, pki: { ...closedConfig.vault.pki, crl: 'closed' } } },
    { VAULT_TOKEN: 'root' },
  );
  await expect(httpsRequest(closed.listenerAddress('app').port, client)).rejects.toThrow();
  expect(closed.notReadyReasons()).toContain('the CRL expired and could not be refreshed (vault.pki.crl: closed)');
});
