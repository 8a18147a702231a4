/**
 * What one sidecar costs Vault, counted by Vault itself (a file audit device on a private dev
 * server, tuned as `vault setup` tunes its mounts), issue 27 defect 3. Budget: at most 30 requests
 * per sidecar-hour at steady state with 1h certificates and the default trust intervals. The hour
 * is scaled 1:300 (12 s): the certificate's TTL, the renewal's outage budget and both trust
 * intervals are divided by 300, so the count per scaled hour is the count per real hour. And a
 * stranger's handshakes: 1,000 with self-signed certificates cost Vault a bounded number of reads.
 */
import tls from 'node:tls';
import { expect, inject, it, vi } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import { HINT_CHECKS_PER_ISSUER_SET } from '../../src/identity/trust-refresher.js';
import { useEchoApp, usePrivateVaults } from '../support/fixtures.js';
import { TestPki } from '../support/pki.js';
import { issueFromVault, startSidecar } from '../support/sidecars.js';
import { vaultApi } from '../support/vault-api.js';
import { enableFileAudit } from '../support/vault-audit.js';

const shared = inject('vault');
const echo = useEchoApp();
const startPrivateVault = usePrivateVaults(shared.bin);

const SCALE = 300;
const HOUR_MS = 3_600_000 / SCALE;
const BUDGET_PER_HOUR = 30;

/** The trust intervals a config that names none gets. */
function defaultIntervals(): { refreshInterval: number; issuerCheckInterval: number } {
  const config = buildConfig(
    { vault: { address: 'http://127.0.0.1:1', pki: { role: 'x' } }, identity: { commonName: 'x.test' } },
    { VAULT_TOKEN: 'x' },
  );
  if (!config.vault) throw new Error('no vault section');
  return config.vault.pki;
}

async function renewals(sidecar: Awaited<ReturnType<typeof startSidecar>>): Promise<number> {
  const values = (await sidecar.metrics.certRenewals.get()).values;
  return values.filter((v) => v.labels.result === 'success').reduce((sum, v) => sum + v.value, 0);
}

it(`one sidecar with the default trust intervals and 1h certificates makes at most ${BUDGET_PER_HOUR} Vault requests per hour, renewals included`, {
  timeout: 240_000,
}, async () => {
  const { vault } = await startPrivateVault();
  const audit = await enableFileAudit(vault);
  const { refreshInterval, issuerCheckInterval } = defaultIntervals();
  const sidecar = await startSidecar(
    {
      vault: {
        address: vault.address,
        pki: {
          mount: vault.pkiMount,
          role: vault.role,
          refreshInterval: refreshInterval / SCALE,
          issuerCheckInterval: issuerCheckInterval / SCALE,
        },
      },
      identity: { commonName: 'budget.test', dnsNames: ['localhost'], ttl: 3600 / SCALE, renewal: { outageBudget: 120 / SCALE } },
      inbound: [{ name: 'app', listen: '127.0.0.1:0', target: `127.0.0.1:${echo.port()}` }],
    },
    { VAULT_TOKEN: 'root' },
  );
  // Steady state: from the first renewal on (start-up's own reads are not what the fleet pays
  // every hour), across the next two renewals.
  await vi.waitFor(async () => expect(await renewals(sidecar)).toBeGreaterThanOrEqual(1), { timeout: 30_000, interval: 100 });
  const from = audit.requests().length;
  const startedAt = Date.now();
  await vi.waitFor(async () => expect(await renewals(sidecar)).toBeGreaterThanOrEqual(3), { timeout: 60_000, interval: 100 });
  const caused = audit.requests().slice(from);
  const hours = (Date.now() - startedAt) / HOUR_MS;
  const summary = caused.map((r) => `${r.operation} ${r.path}`).join('\n');
  expect(caused.filter((r) => r.path.endsWith('/sign/test-service')).length, summary).toBeGreaterThanOrEqual(2);
  console.info(
    `vault budget: ${caused.length} requests in ${hours.toFixed(2)} scaled hours (${(caused.length / hours).toFixed(1)} per sidecar-hour)`,
  );
  expect(caused.length, `${caused.length} requests in ${hours.toFixed(2)} scaled hours:\n${summary}`).toBeLessThanOrEqual(
    Math.ceil(BUDGET_PER_HOUR * hours),
  );

  // The reads are conditional: once the sidecar's previous read is older than Vault's last change
  // by more than the clock-skew margin (about 40 s here, see VaultPkiSource), unchanged issuers
  // and CRLs answer 304…
  await vi.waitFor(
    () => {
      const answered = audit.notModified();
      expect(answered.some((p) => p.endsWith('/json'))).toBe(true);
      expect(answered.some((p) => p.endsWith('/crl'))).toBe(true);
    },
    { timeout: 90_000, interval: 500 },
  );
  // …and a change is still read in full: a revocation reaches the sidecar's CRL.
  const crlBefore = sidecar.trust.material.crlPems.join('');
  const victim = await issueFromVault(vault, 'revoked.test');
  await vaultApi(vault, 'POST', `${vault.pkiMount}/revoke`, { certificate: victim.cert });
  await vi.waitFor(() => expect(sidecar.trust.material.crlPems.join('')).not.toBe(crlBefore), { timeout: 30_000, interval: 200 });
});

/** One handshake with a certificate of a stranger's own making; the sidecar refuses it. */
function strangerHandshake(port: number, stranger: { cert: string; key: string }): Promise<void> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...stranger, rejectUnauthorized: false });
    socket.on('error', () => resolve());
    socket.once('secureConnect', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    socket.once('close', () => resolve());
  });
}

it(`a stranger's 1,000 handshakes with self-signed certificates cost Vault at most ${HINT_CHECKS_PER_ISSUER_SET} reads`, {
  timeout: 120_000,
}, async () => {
  const { vault } = await startPrivateVault();
  const audit = await enableFileAudit(vault);
  const sidecar = await startSidecar(
    {
      vault: { address: vault.address, pki: { mount: vault.pkiMount, role: vault.role } },
      identity: { commonName: 'b.test', dnsNames: ['localhost'], ttl: '1h' },
      inbound: [{ name: 'app', listen: '127.0.0.1:0', target: `127.0.0.1:${echo.port()}` }],
    },
    { VAULT_TOKEN: 'root' },
  );
  const port = sidecar.listenerAddress('app').port;
  const from = audit.requests().length;
  // Ten strangers, each its own CA, 100 handshakes each, 25 at a time.
  for (let i = 0; i < 10; i++) {
    const stranger = TestPki.create(`stranger-${i}`).leaf('client', { cn: 'stranger.test' });
    for (let batch = 0; batch < 4; batch++) {
      await Promise.all(Array.from({ length: 25 }, () => strangerHandshake(port, stranger)));
    }
  }
  const refused = async () =>
    (await sidecar.metrics.handshakeFailures.get()).values.filter((v) => v.labels.reason === 'unknown_ca').reduce((s, v) => s + v.value, 0);
  await vi.waitFor(async () => expect(await refused()).toBeGreaterThanOrEqual(1000), { timeout: 30_000, interval: 100 });
  const caused = audit.requests().slice(from);
  expect(caused.length, caused.map((r) => `${r.operation} ${r.path}`).join('\n')).toBeLessThanOrEqual(HINT_CHECKS_PER_ISSUER_SET);
  // …and only the cheap issuer check: a stranger never makes it fetch issuers or CRLs.
  expect(caused.filter((r) => !(r.operation === 'list' && r.path.replace(/\/$/, '') === `${vault.pkiMount}/issuers`))).toEqual([]);
});
