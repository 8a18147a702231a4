/**
 * Issue 29, defect 5: after a Vault outage, a certificate in its last third must be renewed within
 * 5 s of Vault's return. On fake time (vitest's clock drives the renewer's injected clock and its
 * timers), with the real renewer, store and verification and a dev CA standing in for Vault: Vault
 * goes away before the renewal point and comes back at chosen moments of the certificate's last
 * third, down to its last seconds and past its expiry.
 */
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ErrorCodes, SidecarError } from '../../src/errors.js';
import type { CertificateBundle } from '../../src/identity/bundle.js';
import { DevCertificateAuthority } from '../../src/identity/dev-ca.js';
import { Renewer } from '../../src/identity/renewer.js';
import { retryCeilingSeconds } from '../../src/identity/schedule.js';
import type { CertificateSource, RequestedIdentity } from '../../src/identity/source.js';
import { IdentityStore } from '../../src/identity/store.js';

const wanted: RequestedIdentity = { commonName: 'web.test', dnsNames: ['web.test'], ipSans: [], uriSans: [], ttl: 300 };

/** A seeded PRNG (mulberry32): the jitter draws are the same on every run. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Vault as the renewer sees it: away (a refused connection) or issuing from a dev CA at the fake time. */
class OutageVault implements CertificateSource {
  readonly kind = 'vault';
  away = false;
  pending: Promise<unknown> | undefined;
  constructor(private readonly ca: DevCertificateAuthority) {}
  issue(identity: RequestedIdentity): Promise<CertificateBundle> {
    if (this.away) {
      return Promise.reject(new SidecarError(ErrorCodes.VAULT_UNREACHABLE, 'vault: issue: cannot reach http://vault:8200 (ECONNREFUSED)'));
    }
    const issued = this.ca.issue({
      commonName: identity.commonName,
      dnsNames: [...identity.dnsNames],
      ttlSeconds: identity.ttl,
      now: new Date(),
    });
    this.pending = issued;
    return issued;
  }
  async close(): Promise<string[]> {
    return [];
  }
}

let ca: DevCertificateAuthority;
beforeEach(async () => {
  ca ??= await DevCertificateAuthority.create();
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: new Date('2026-03-01T00:00:00Z') });
});
afterEach(() => {
  vi.useRealTimers();
});

/** Advances fake time in small steps, letting a real (crypto) issue finish whenever one is in flight. */
async function advanceUntil(done: () => boolean, source: OutageVault, limitMs: number): Promise<void> {
  const end = Date.now() + limitMs;
  while (!done() && Date.now() < end) {
    await vi.advanceTimersByTimeAsync(100);
    if (source.pending) {
      await source.pending;
      source.pending = undefined;
      await vi.advanceTimersByTimeAsync(0);
    }
  }
}

describe('renewal after an outage that reaches the certificate’s last third', () => {
  // Seconds before notAfter at which Vault comes back: the start of the last third, deep into it,
  // its last seconds, and after expiry.
  const returns = [100, 60, 30, 12, 5, 2, -20];
  const seeds = [1, 2, 3, 4, 5, 6, 7, 8];
  it.each(returns.flatMap((left) => seeds.map((seed) => [left, seed])))(
    'Vault back %is before notAfter (seed %i): renewed within 5 s',
    async (leftAtReturn, seed) => {
      const source = new OutageVault(ca);
      const store = new IdentityStore(wanted);
      const published: number[] = [];
      store.onPublish(() => published.push(Date.now()));
      const renewer = new Renewer({
        source,
        store,
        identity: wanted,
        policy: { windowStart: 0.5, windowEnd: 0.7, outageBudget: 120 },
        minBackoffSeconds: 1,
        maxBackoffSeconds: 60,
        logger: pino({ level: 'silent' }),
        random: seeded(seed),
        now: () => Date.now(),
      });
      renewer.start();
      await advanceUntil(() => published.length === 1, source, 10_000);
      const notAfter = store.current()?.info.notAfter.getTime() ?? 0;
      expect(published).toHaveLength(1);
      // Vault goes away long before the renewal point (50–70% of 300 s) and stays away.
      source.away = true;
      const back = notAfter - leftAtReturn * 1000;
      await advanceUntil(() => Date.now() >= back, source, 400_000);
      source.away = false;
      await advanceUntil(() => published.length === 2, source, 120_000);
      await renewer.stop();
      expect(published).toHaveLength(2);
      expect((published[1] ?? Infinity) - back).toBeLessThanOrEqual(5_000);
    },
  );
});

describe('retryCeilingSeconds', () => {
  const notBefore = new Date('2026-03-01T00:00:00Z');
  const notAfter = new Date('2026-03-01T01:00:00Z');
  const at = (secondsLeft: number) => new Date(notAfter.getTime() - secondsLeft * 1000);
  it('is maxBackoff early in a long certificate’s life', () => {
    expect(retryCeilingSeconds({ notBefore, notAfter }, at(3000), 60)).toBe(60);
  });
  it('is a tenth of the time left before the last third, at least the last-stretch ceiling', () => {
    expect(retryCeilingSeconds({ notBefore, notAfter }, at(1500), 600)).toBe(150);
  });
  it('is a few seconds in the last third, past expiry, and without a certificate', () => {
    for (const left of [1200, 300, 30, 5, 0, -60])
      expect(retryCeilingSeconds({ notBefore, notAfter }, at(left), 60)).toBeLessThanOrEqual(4);
    expect(retryCeilingSeconds(undefined, notAfter, 60)).toBeLessThanOrEqual(4);
  });
  it('keeps a refusal only an operator can fix slow, except in the certificate’s last seconds', () => {
    expect(retryCeilingSeconds(undefined, notAfter, 60, true)).toBe(60);
    expect(retryCeilingSeconds({ notBefore, notAfter }, at(1200), 60, true)).toBe(60);
    expect(retryCeilingSeconds({ notBefore, notAfter }, at(300), 60, true)).toBe(30);
    expect(retryCeilingSeconds({ notBefore, notAfter }, at(20), 60, true)).toBe(4);
  });
  it('never exceeds maxBackoff', () => {
    expect(retryCeilingSeconds(undefined, notAfter, 0.5)).toBe(0.5);
  });
});
