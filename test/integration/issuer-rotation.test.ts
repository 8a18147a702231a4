/**
 * An issuer rotation under load, hitless: two sidecars (A calls B through its outbound listener)
 * keep a stream of requests going while the PKI mount gets a new root issuer as its default and
 * both sidecars renew onto it. Each learns the new issuer from its cheap issuer check and moves to
 * it only after trusting it for twice that interval, so no handshake is refused — in every CRL
 * mode. The trust refresh interval is left at 5 minutes: the check, not the refresh, must carry it.
 */
import http from 'node:http';
import { describe, expect, inject, it } from 'vitest';
import type { Sidecar } from '../../src/sidecar.js';
import { waitFor } from '../support/cli.js';
import { useEchoApp, usePrivateVaults } from '../support/fixtures.js';
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

describe.each(['soft', 'closed', 'off'] as const)('with crl: %s', (crl) => {
  it('fails no request while both sidecars move onto a new root issuer', { timeout: 60_000 }, async () => {
    const { vault } = await startPrivateVault();
    const pki = { mount: vault.pkiMount, role: vault.role, crl, refreshInterval: '5m', issuerCheckInterval: '1s' };
    const b = await startSidecar(
      {
        vault: { address: vault.address, pki },
        identity: { commonName: 'b.test', dnsNames: ['localhost'], ttl: '10m' },
        inbound: [{ name: 'app', listen: '127.0.0.1:0', target: `127.0.0.1:${echo.port()}` }],
      },
      { VAULT_TOKEN: 'root' },
    );
    const a = await startSidecar(
      {
        vault: { address: vault.address, pki },
        identity: { commonName: 'a.test', dnsNames: ['localhost'], ttl: '10m' },
        outbound: [{ name: 'b', listen: '127.0.0.1:0', target: `127.0.0.1:${b.listenerAddress('app').port}`, serverName: 'localhost' }],
      },
      { VAULT_TOKEN: 'root' },
    );

    // A new client connection per request: every request is a fresh mTLS handshake A → B.
    const agent = new http.Agent({ keepAlive: false });
    let ok = 0;
    const failures: string[] = [];
    let running = true;
    const load = async () => {
      while (running) {
        const status = await new Promise<number | string>((resolve) => {
          const req = http.get({ host: '127.0.0.1', port: a.listenerAddress('b').port, path: '/', agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          });
          req.on('error', (err) => resolve(err.message));
        });
        if (status === 200) ok++;
        else failures.push(String(status));
      }
    };
    const workers = Array.from({ length: 4 }, load);
    try {
      await rotateRoot(vault);
      // Both renew at once: each holds its new certificate until peers have had time to trust the issuer.
      for (const sidecar of [a, b]) sidecar.renewer.renewNow();
      const onNewIssuer = (s: Sidecar) => s.store.current()?.info.issuer.includes('(rotated)') === true;
      await waitFor(() => onNewIssuer(a) && onNewIssuer(b), 20_000, 'both sidecars on the new issuer');
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      running = false;
      await Promise.all(workers);
    }
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(50);
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
