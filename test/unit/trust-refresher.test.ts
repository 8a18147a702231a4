/**
 * What the trust refresher does with an issuer no loaded CRL covers (the edge cases; the real
 * Vault cases are in test/integration/intermediate-ca.test.ts): `soft` enforces no CRL until
 * every issuer has one, `closed` keeps them; either way the gap is logged once, not per refresh.
 */
import { webcrypto } from 'node:crypto';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CrlGap, TrustMaterial } from '../../src/identity/trust.js';
import { TrustStore } from '../../src/identity/trust.js';
import { TrustRefresher } from '../../src/identity/trust-refresher.js';

function logged(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { logger, lines };
}

const gap: CrlGap = { issuer: 'new-root', reason: 'Vault returned no CRL for it', retry: true };
const material = (crlMissing: CrlGap[]): TrustMaterial => ({ caPems: ['ca-a', 'ca-b'], crlPems: ['crl-a'], crlMissing });

it.each([
  ['soft', []],
  ['closed', ['crl-a']],
] as const)('with crl: %s, an issuer without a CRL leaves CRLs %j enforced, logged once', async (crlMode, enforced) => {
  const { logger, lines } = logged();
  const trust = new TrustStore();
  let next = material([gap]);
  const refresher = new TrustRefresher({ fetchTrust: async () => next, trust, intervalSeconds: 300, crlMode, logger });
  await refresher.refreshNow();
  await refresher.refreshNow();
  expect(trust.material.caPems).toEqual(['ca-a', 'ca-b']);
  expect(trust.material.crlPems).toEqual(enforced);
  const warnings = lines.filter((line) => line.code === 'SIDECAR_CRL_MISSING');
  expect(warnings).toHaveLength(1);
  expect(warnings[0]?.msg).toContain('no CRL for new-root: Vault returned no CRL for it');
  // Once every issuer has a CRL, all are enforced again.
  next = material([]);
  await refresher.refreshNow();
  expect(trust.material.crlPems).toEqual(['crl-a']);
  await refresher.stop();
});

describe('what peers and Vault can make the refresher do', () => {
  afterEach(() => vi.useRealTimers());

  /** A Vault whose issuer list never changes; counts LISTs (trustVersion) and full fetches. */
  function steadyVault(material: TrustMaterial) {
    const calls = { list: 0, fetch: 0 };
    return {
      calls,
      fetchTrust: async () => {
        calls.fetch++;
        return { ...material, version: 'issuer-a' };
      },
      trustVersion: async () => {
        calls.list++;
        return 'issuer-a';
      },
    };
  }

  it('with crl: soft and a CRL Vault serves already expired, issuer checks do not fetch everything again', async () => {
    vi.useFakeTimers();
    const { logger, lines } = logged();
    // A real CRL whose nextUpdate is in the past, as Vault serves one with auto_rebuild off.
    const stale = await staleCrl();
    const vault = steadyVault({ caPems: ['ca-a'], crlPems: [stale], crlNextUpdate: new Date(Date.now() - 60_000) });
    const trust = new TrustStore();
    // No jitter: exactly one check every 15 s.
    const refresher = new TrustRefresher({
      ...vault,
      checkSeconds: 15,
      trust,
      intervalSeconds: 300,
      crlMode: 'soft',
      logger,
      random: () => 0.5,
    });
    await refresher.start();
    expect(trust.material.crlPems).toEqual([]);
    await vi.advanceTimersByTimeAsync(120_000);
    // Eight issuer checks found the same issuers: no full fetch beyond the first.
    expect(vault.calls.list).toBe(8);
    expect(vault.calls.fetch).toBe(1);
    expect(lines.filter((l) => l.msg === 'the issuers changed; refreshing the trust bundle')).toEqual([]);
    await refresher.stop();
  });

  it('a flood of unknown-issuer handshakes never fetches the bundle, and adds at most one LIST per 30 s to the periodic checks', async () => {
    vi.useFakeTimers();
    const { logger } = logged();
    // In 121 s: with a 15 s check, its 8 checks and the one hint before the first of them; with a
    // 5 min check, none of its own and one hint per 30 s.
    for (const [checkSeconds, lists] of [
      [15, 9],
      [300, 5],
    ] as const) {
      const vault = steadyVault({ caPems: ['ca-a'], crlPems: [] });
      const refresher = new TrustRefresher({
        ...vault,
        checkSeconds,
        trust: new TrustStore(),
        intervalSeconds: 3600,
        crlMode: 'off',
        logger,
      });
      await refresher.start();
      await vi.advanceTimersByTimeAsync(1000);
      // A stranger with a self-signed certificate, 100 handshakes a second for two minutes.
      for (let tick = 0; tick < 1200; tick++) {
        for (let i = 0; i < 10; i++) refresher.hint();
        await vi.advanceTimersByTimeAsync(100);
      }
      expect(vault.calls.fetch, `checkSeconds ${checkSeconds}`).toBe(1);
      expect(vault.calls.list, `checkSeconds ${checkSeconds}`).toBeLessThanOrEqual(lists);
      await refresher.stop();
    }
  });

  it('an issuer that really appeared is fetched on the first unknown-issuer handshake (a rotation not yet seen)', async () => {
    const { logger } = logged();
    let version = 'issuer-a';
    let fetches = 0;
    const trust = new TrustStore();
    const refresher = new TrustRefresher({
      fetchTrust: async () => {
        fetches++;
        return { caPems: [`ca-${version}`], crlPems: [], version };
      },
      trustVersion: async () => version,
      checkSeconds: 300,
      trust,
      intervalSeconds: 3600,
      crlMode: 'off',
      logger,
    });
    await refresher.start();
    version = 'issuer-a,issuer-b';
    refresher.hint();
    await vi.waitFor(() => expect(trust.material.caPems).toEqual(['ca-issuer-a,issuer-b']));
    expect(fetches).toBe(2);
    await refresher.stop();
  });

  it.each([
    [
      'every CRL read fails',
      async () => ({ caPems: ['ca-a'], crlPems: [], crlMissing: [{ issuer: 'root', reason: 'HTTP 500', retry: true }], version: 'a' }),
    ],
    [
      'the first fetch fails',
      async (): Promise<TrustMaterial> => {
        throw new Error('vault: list issuers of pki: HTTP 500');
      },
    ],
  ])('with crl: closed, when %s, it is not ready and says why', async (_, fetchTrust) => {
    const { logger, lines } = logged();
    const trust = new TrustStore();
    const refresher = new TrustRefresher({ fetchTrust, trust, intervalSeconds: 300, crlMode: 'closed', required: true, logger });
    await refresher.refreshNow();
    const reasons = refresher.notReadyReasons();
    expect(reasons.join('\n')).toMatch(
      /no CRL is loaded \((no CRL for root: HTTP 500|vault: list issuers of pki: HTTP 500)\); every peer is refused/,
    );
    expect(lines.some((l) => l.code === 'SIDECAR_CRL_MISSING' || l.code === 'SIDECAR_TRUST_REFRESH_FAILED')).toBe(true);
    await refresher.stop();
  });

  it('with crl: soft, a failed CRL read does not make it unready', async () => {
    const { logger } = logged();
    const refresher = new TrustRefresher({
      fetchTrust: async () => ({
        caPems: ['ca-a'],
        crlPems: [],
        crlMissing: [{ issuer: 'root', reason: 'HTTP 500', retry: true }],
        version: 'a',
      }),
      trust: new TrustStore(),
      intervalSeconds: 300,
      crlMode: 'soft',
      required: true,
      logger,
    });
    await refresher.refreshNow();
    expect(refresher.notReadyReasons()).toEqual([]);
    await refresher.stop();
  });
});

/** A CRL signed by a throwaway key, its nextUpdate a minute ago. */
async function staleCrl(): Promise<string> {
  await import('../../src/identity/x509-setup.js');
  const { X509CrlGenerator } = await import('@peculiar/x509');
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, false, ['sign', 'verify']);
  const crl = await X509CrlGenerator.create({
    issuer: 'CN=stale test CA',
    thisUpdate: new Date(Date.now() - 3_600_000),
    nextUpdate: new Date(Date.now() - 60_000),
    signingAlgorithm: alg,
    signingKey: keys.privateKey,
  });
  return crl.toString('pem');
}
