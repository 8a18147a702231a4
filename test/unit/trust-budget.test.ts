/**
 * What the trust refresher costs Vault with the default settings (issue 27, defect 3): Vault
 * calls per sidecar-hour at steady state, what a stranger's handshakes can add, and that the
 * handover wait follows the (jittered) issuer check interval. Fake time, a counting source; the
 * same budget against a real Vault's audit log is in test/integration/vault-budget.test.ts.
 */
import { pino } from 'pino';
import { afterEach, expect, it, vi } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import { TrustStore } from '../../src/identity/trust.js';
import { HINT_CHECKS_PER_ISSUER_SET, JITTER, TrustRefresher } from '../../src/identity/trust-refresher.js';

const logger = pino({ level: 'silent' });
afterEach(() => vi.useRealTimers());

/** The defaults a config naming only the role gets. */
function defaults(): { refreshInterval: number; issuerCheckInterval: number } {
  const config = buildConfig(
    {
      vault: { address: 'http://127.0.0.1:8200', pki: { role: 'web' } },
      identity: { commonName: 'web.test' },
      inbound: [{ name: 'app', listen: '127.0.0.1:8443', target: '127.0.0.1:8080' }],
    },
    { VAULT_TOKEN: 'x' },
  );
  const pki = config.vault?.pki;
  if (!pki) throw new Error('no vault.pki');
  return pki;
}

/**
 * A mount with an intermediate and its key-less root: a full fetch is one LIST, two issuer reads
 * and two CRL reads (what VaultPkiSource.fetchTrust makes), an issuer check one LIST.
 */
function countingVault(version = () => 'int,root') {
  const calls = { requests: 0, fetches: 0, lists: 0 };
  return {
    calls,
    fetchTrust: async () => {
      calls.fetches++;
      calls.requests += 5;
      return { caPems: ['ca-int', 'ca-root'], crlPems: [], version: version() };
    },
    trustVersion: async () => {
      calls.lists++;
      calls.requests += 1;
      return version();
    },
  };
}

it('with the default intervals, keeping trust current costs at most 28 Vault requests per sidecar-hour', async () => {
  vi.useFakeTimers();
  const { refreshInterval, issuerCheckInterval } = defaults();
  const vault = countingVault();
  const refresher = new TrustRefresher({
    ...vault,
    checkSeconds: issuerCheckInterval,
    intervalSeconds: refreshInterval,
    trust: new TrustStore(),
    crlMode: 'soft',
    logger,
  });
  await refresher.start();
  const afterStart = vault.calls.requests;
  // Ten hours, so the jitter averages out; the renewals of a 1h certificate (one sign each,
  // about 1.5 an hour) come on top and are counted against a real Vault in the integration test.
  await vi.advanceTimersByTimeAsync(10 * 3600_000);
  const perHour = (vault.calls.requests - afterStart) / 10;
  expect(perHour).toBeLessThanOrEqual(28);
  expect(vault.calls.fetches - 1).toBeGreaterThanOrEqual(10 * Math.floor(3600 / refreshInterval / (1 + JITTER)));
  await refresher.stop();
});

it("a stranger's handshakes bring the issuer check forward a bounded number of times, however long they go on", async () => {
  vi.useFakeTimers();
  const vault = countingVault();
  // A check interval longer than the flood: every LIST seen is one a hint caused.
  const refresher = new TrustRefresher({
    ...vault,
    checkSeconds: 6 * 3600,
    intervalSeconds: 6 * 3600,
    trust: new TrustStore(),
    crlMode: 'off',
    logger,
  });
  await refresher.start();
  // 1,000 handshakes every minute for an hour.
  for (let minute = 0; minute < 60; minute++) {
    for (let i = 0; i < 1000; i++) refresher.hint();
    await vi.advanceTimersByTimeAsync(60_000);
  }
  expect(vault.calls.fetches).toBe(1);
  expect(vault.calls.lists).toBeLessThanOrEqual(HINT_CHECKS_PER_ISSUER_SET);
  await refresher.stop();
});

it('after a real issuer change, hints may check again (the bound is per issuer set)', async () => {
  vi.useFakeTimers();
  let version = 'a';
  const vault = countingVault(() => version);
  const trust = new TrustStore();
  const refresher = new TrustRefresher({ ...vault, checkSeconds: 6 * 3600, intervalSeconds: 6 * 3600, trust, crlMode: 'off', logger });
  await refresher.start();
  for (let i = 0; i < 10; i++) {
    refresher.hint();
    await vi.advanceTimersByTimeAsync(60_000);
  }
  expect(vault.calls.lists).toBe(HINT_CHECKS_PER_ISSUER_SET);
  // The operator adds an issuer; the sidecar learns it some other way (a renewal's ca_chain).
  version = 'a,b';
  await refresher.refreshNow();
  version = 'a,b,c';
  refresher.hint();
  await vi.advanceTimersByTimeAsync(1000);
  expect(trust.material.version).toBe('a,b,c');
  await refresher.stop();
});

it('the handover wait covers two of the longest jittered issuer checks', () => {
  const { refreshInterval, issuerCheckInterval } = defaults();
  const refresher = new TrustRefresher({
    ...countingVault(),
    checkSeconds: issuerCheckInterval,
    intervalSeconds: refreshInterval,
    trust: new TrustStore(),
    crlMode: 'off',
    logger,
  });
  expect(refresher.propagationMs).toBe(2 * issuerCheckInterval * (1 + JITTER) * 1000);
  // …and peers still learn a new issuer long before a 1h certificate's renewal runs out of time.
  expect(refresher.propagationMs).toBeLessThanOrEqual(15 * 60_000);
});
