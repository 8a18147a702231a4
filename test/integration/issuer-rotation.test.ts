/**
 * Issuer changes under load through two sidecars (A calls B through its outbound listener), in
 * every CRL mode. A new root issuer and a new intermediate are hitless: each sidecar learns the
 * new issuer from its cheap issuer check and moves to it only after trusting it for twice that
 * interval (the trust refresh interval stays at 5 minutes: the check must carry it). A CA replaced
 * wholesale (no overlap of trust) fails handshakes only until both have renewed on their own,
 * and each says why. An issuer Vault keeps no CRL for is trusted without revocation in `soft`
 * mode and refused in `closed` mode.
 */
import { describe, expect, inject, it } from 'vitest';
import type { Sidecar } from '../../src/sidecar.js';
import { waitFor } from '../support/cli.js';
import { useEchoApp, usePrivateVaults } from '../support/fixtures.js';
import { underLoad } from '../support/load.js';
import { capturingLogger } from '../support/logs.js';
import { TestPki } from '../support/pki.js';
import { httpsRequest, issueFromVault, startSidecar } from '../support/sidecars.js';
import { vaultApi } from '../support/vault-api.js';
import type { TestVault } from '../support/vault-setup.js';

const shared = inject('vault');
const echo = useEchoApp();
const startPrivateVault = usePrivateVaults(shared.bin);

/** The operator's root rotation: a new root issuer, made the mount's default; the old one stays. */
async function rotateRoot(vault: TestVault): Promise<void> {
  const rotated = await vaultApi<{ data: { issuer_id: string } }>(vault, 'POST', `${vault.pkiMount}/root/rotate/internal`, {
    common_name: 'vault-mtls-sidecar test root (rotated)',
    ttl: '87600h',
    key_type: 'ec',
    key_bits: 256,
  });
  await vaultApi(vault, 'POST', `${vault.pkiMount}/root/replace`, { default: rotated.data.issuer_id });
}

/**
 * An intermediate mount whose issuer `name` is signed by the root on the test mount, as
 * docs/vault-setup.md's setup does it; the test role is copied onto it.
 */
async function intermediateMount(vault: TestVault, name: string): Promise<string> {
  const mount = `${vault.pkiMount}-int`;
  await vaultApi(vault, 'POST', `sys/mounts/${mount}`, { type: 'pki', config: { max_lease_ttl: '8760h' } });
  const role = await vaultApi<{ data: Record<string, unknown> }>(vault, 'GET', `${vault.pkiMount}/roles/${vault.role}`);
  // Where the root's CRL is: written into every intermediate it signs.
  await vaultApi(vault, 'POST', `${vault.pkiMount}/config/urls`, {
    crl_distribution_points: [`${vault.address}/v1/${vault.pkiMount}/crl`],
  });
  await vaultApi(vault, 'POST', `${mount}/roles/${vault.role}`, role.data);
  await signIntermediate(vault, mount, name);
  return mount;
}

/** A new intermediate on `mount`, signed by the root, imported with its chain and made the default. */
async function signIntermediate(vault: TestVault, mount: string, name: string): Promise<void> {
  const csr = await vaultApi<{ data: { csr: string } }>(vault, 'POST', `${mount}/intermediate/generate/internal`, {
    common_name: `vault-mtls-sidecar test intermediate ${name}`,
    key_type: 'ec',
  });
  const signed = await vaultApi<{ data: { certificate: string } }>(vault, 'POST', `${vault.pkiMount}/root/sign-intermediate`, {
    csr: csr.data.csr,
    format: 'pem_bundle',
    ttl: '8760h',
  });
  const imported = await vaultApi<{ data: { imported_issuers: string[]; mapping: Record<string, string> } }>(
    vault,
    'POST',
    `${mount}/intermediate/set-signed`,
    { certificate: signed.data.certificate },
  );
  // The issuer with a key is the new intermediate (the root comes in key-less, once).
  const issuer = Object.entries(imported.data.mapping ?? {}).find(([, key]) => key)?.[0];
  if (issuer) await vaultApi(vault, 'POST', `${mount}/root/replace`, { default: issuer });
}

/** B serves the echo app inbound; A calls B through its outbound listener `b`. Each logs to its own array. */
async function startPair(address: string, pki: Record<string, unknown>) {
  const bLog = capturingLogger();
  const b = await startSidecar(
    {
      vault: { address, pki },
      identity: { commonName: 'b.test', dnsNames: ['localhost'], ttl: '10m' },
      inbound: [{ name: 'app', listen: '127.0.0.1:0', target: `127.0.0.1:${echo.port()}` }],
    },
    { VAULT_TOKEN: 'root' },
    { logger: bLog.logger },
  );
  const aLog = capturingLogger();
  const a = await startSidecar(
    {
      vault: { address, pki },
      identity: { commonName: 'a.test', dnsNames: ['localhost'], ttl: '10m' },
      outbound: [{ name: 'b', listen: '127.0.0.1:0', target: `127.0.0.1:${b.listenerAddress('app').port}`, serverName: 'localhost' }],
    },
    { VAULT_TOKEN: 'root' },
    { logger: aLog.logger },
  );
  return { a, b, logs: [aLog.lines, bLog.lines] };
}

const onIssuer = (s: Sidecar, name: string) => s.store.current()?.info.issuer.includes(name) === true;
const codes = (lines: Record<string, unknown>[]) => new Set(lines.map((line) => line.code).filter(Boolean));

describe.each(['soft', 'closed', 'off'] as const)('with crl: %s', (crl) => {
  it('fails no request while both sidecars move onto a new root issuer', { timeout: 60_000 }, async () => {
    const { vault } = await startPrivateVault();
    const pki = { mount: vault.pkiMount, role: vault.role, crl, refreshInterval: '5m', issuerCheckInterval: '1s' };
    const { a, b } = await startPair(vault.address, pki);

    const result = await underLoad(a.listenerAddress('b').port, async () => {
      await rotateRoot(vault);
      // Both renew at once: each holds its new certificate until peers have had time to trust the issuer.
      for (const sidecar of [a, b]) sidecar.renewer.renewNow();
      await waitFor(() => onIssuer(a, '(rotated)') && onIssuer(b, '(rotated)'), 20_000, 'both sidecars on the new issuer');
      await new Promise((r) => setTimeout(r, 1000));
    });
    expect(result.failures).toEqual([]);
    expect(result.ok).toBeGreaterThan(50);
  });

  it('fails no request while both sidecars move onto a new intermediate under the same root', { timeout: 60_000 }, async () => {
    const { vault } = await startPrivateVault();
    // The setup people run: leaves from an intermediate mount whose issuer is signed by the root mount.
    const mount = await intermediateMount(vault, 'first');
    const pki = { mount, role: vault.role, crl, refreshInterval: '5m', issuerCheckInterval: '1s' };
    const { a, b, logs } = await startPair(vault.address, pki);
    expect(onIssuer(a, 'intermediate first')).toBe(true);
    // The intermediate's CRL from this mount, the key-less root's from its own (the distribution point).
    for (const sidecar of [a, b]) expect(sidecar.trust.material.crlPems.length).toBe(crl === 'off' ? 0 : 2);
    // …without a failed Vault call (the root's own CRL read answers 500 there) for an alert to see.
    const crlReads = (await a.metrics.vaultRequestDuration.get()).values.filter((v) => v.labels.operation === 'read-crl');
    expect(crlReads.filter((v) => v.labels.status !== '200')).toEqual([]);

    const result = await underLoad(a.listenerAddress('b').port, async () => {
      await signIntermediate(vault, mount, 'second');
      for (const sidecar of [a, b]) sidecar.renewer.renewNow();
      await waitFor(() => onIssuer(a, 'intermediate second') && onIssuer(b, 'intermediate second'), 20_000, 'both on the new intermediate');
      await new Promise((r) => setTimeout(r, 1000));
    });
    expect(result.failures).toEqual([]);
    expect(result.ok).toBeGreaterThan(50);
    for (const lines of logs) {
      expect(codes(lines)).not.toContain('SIDECAR_TRUST_REFRESH_FAILED');
      expect(codes(lines)).not.toContain('SIDECAR_CRL_MISSING');
    }
  });

  it('recovers from a CA replaced wholesale within a bounded window, and says why', { timeout: 60_000 }, async () => {
    const { vault } = await startPrivateVault();
    const pki = { mount: vault.pkiMount, role: vault.role, crl, refreshInterval: '5m', issuerCheckInterval: '1s' };
    const { a, b, logs } = await startPair(vault.address, pki);
    let replacedAt = 0;
    const result = await underLoad(a.listenerAddress('b').port, async () => {
      // Every issuer and key of the mount deleted, a new root generated: no overlap of trust.
      await vaultApi(vault, 'DELETE', `${vault.pkiMount}/root`);
      await vaultApi(vault, 'POST', `${vault.pkiMount}/root/generate/internal`, {
        common_name: 'vault-mtls-sidecar replacement root',
        ttl: '87600h',
        key_type: 'ec',
      });
      replacedAt = Date.now();
      // Nobody asks them to renew: each sees its issuer gone at its next check and renews itself.
      await waitFor(() => onIssuer(a, 'replacement') && onIssuer(b, 'replacement'), 20_000, 'both on the new CA');
      await new Promise((r) => setTimeout(r, 2000));
    });
    const window = (result.failures.at(-1)?.at ?? replacedAt) - replacedAt;
    expect(window, `failures: ${JSON.stringify(result.failures.slice(0, 5))}`).toBeLessThan(8_000);
    expect(result.ok).toBeGreaterThan(50);
    for (const lines of logs) expect(codes(lines)).toContain('SIDECAR_ISSUER_REMOVED');
  });
});

it('lets a client from an issuer it has not seen yet in on a retry: its refusal fetches the trust bundle', {
  timeout: 30_000,
}, async () => {
  const { vault } = await startPrivateVault();
  // Neither the refresh nor the issuer check would notice the rotation for five minutes.
  const pki = { mount: vault.pkiMount, role: vault.role, refreshInterval: '5m', issuerCheckInterval: '5m' };
  const sidecar = await startSidecar(
    {
      vault: { address: vault.address, pki },
      identity: { commonName: 'b.test', dnsNames: ['localhost'], ttl: '10m' },
      inbound: [{ name: 'app', listen: '127.0.0.1:0', target: `127.0.0.1:${echo.port()}` }],
    },
    { VAULT_TOKEN: 'root' },
  );
  const port = sidecar.listenerAddress('app').port;
  const oldCa = vault.caPem;
  await rotateRoot(vault);
  const client = await issueFromVault(vault, 'new-issuer-client.test');
  const request = () => httpsRequest(port, { ...client, ca: oldCa });
  await expect(request()).rejects.toThrow();
  await waitFor(async () => (await request().catch(() => ({ status: 0 }))).status === 200, 5000, 'the retry to be let in');
});

describe.each([
  ['soft', 200],
  ['closed', 'refused'],
] as const)('with crl: %s, an issuer whose CRL Vault does not have', (crl, outcome) => {
  it(`is trusted with revocation ${crl === 'soft' ? 'off until it has one' : 'refusing its certificates'}, and named in the log`, async () => {
    const { vault } = await startPrivateVault();
    // The overlap step of a CA replacement: the old CA imported without its key (no CRL in Vault).
    const old = TestPki.create('imported-ca');
    await vaultApi(vault, 'POST', `${vault.pkiMount}/issuers/import/cert`, { pem_bundle: old.ca.cert });
    const log = capturingLogger();
    const sidecar = await startSidecar(
      {
        vault: { address: vault.address, pki: { mount: vault.pkiMount, role: vault.role, crl } },
        identity: { commonName: 'b.test', dnsNames: ['localhost'], ttl: '10m' },
        inbound: [{ name: 'app', listen: '127.0.0.1:0', target: `127.0.0.1:${echo.port()}` }],
      },
      { VAULT_TOKEN: 'root' },
      { logger: log.logger },
    );
    const port = sidecar.listenerAddress('app').port;
    const fromOldCa = old.leaf('old-client', { cn: 'old-client.test' });
    const status = await httpsRequest(port, { cert: fromOldCa.cert, key: fromOldCa.key, ca: vault.caPem }).then(
      (res) => res.status,
      () => 'refused',
    );
    expect(status).toBe(outcome);
    // A peer from the mount's own issuer is served either way.
    const current = await issueFromVault(vault, 'current-client.test');
    expect((await httpsRequest(port, { ...current, ca: vault.caPem })).status).toBe(200);
    const warning = log.lines.find((line) => line.code === 'SIDECAR_CRL_MISSING');
    expect(String(warning?.msg)).toContain('its key is not on the mount, so Vault keeps no CRL for it');
  });
});
