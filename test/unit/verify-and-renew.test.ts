/** Verify-before-publish and the renewer's failure handling, with the in-memory dev CA. */
import { describe, expect, it, vi } from 'vitest';
import { ErrorCodes } from '../../src/errors.js';
import type { CertificateBundle } from '../../src/identity/bundle.js';
import { DevCertificateAuthority } from '../../src/identity/dev-ca.js';
import { Renewer } from '../../src/identity/renewer.js';
import type { CertificateSource, RequestedIdentity } from '../../src/identity/source.js';
import { IdentityStore } from '../../src/identity/store.js';
import { verifyBundle } from '../../src/identity/verify.js';
import { testLogger } from '../support/sidecars.js';

const wanted: RequestedIdentity = {
  commonName: 'web.test',
  dnsNames: ['web.test'],
  ipSans: ['127.0.0.1'],
  uriSans: ['spiffe://test/ns/default/sa/web'],
  ttl: 600,
};

async function issue(ca: DevCertificateAuthority, overrides: Partial<{ dnsNames: string[]; ttlSeconds: number; now: Date }> = {}) {
  return ca.issue({
    commonName: wanted.commonName,
    dnsNames: overrides.dnsNames ?? [...wanted.dnsNames],
    ipSans: [...wanted.ipSans],
    uriSans: [...wanted.uriSans],
    ttlSeconds: overrides.ttlSeconds ?? 600,
    now: overrides.now,
  });
}

describe('verifyBundle', () => {
  it('accepts a certificate that chains, matches its key and carries the names', async () => {
    const ca = await DevCertificateAuthority.create();
    const bundle = await issue(ca);
    expect(() => verifyBundle(bundle, wanted, new Date())).not.toThrow();
  });

  it('refuses a key that does not match', async () => {
    const ca = await DevCertificateAuthority.create();
    const [a, b] = [await issue(ca), await issue(ca)];
    expect(() => verifyBundle({ ...a, keyPem: b.keyPem }, wanted, new Date())).toThrow(/private key does not match/);
  });

  it('refuses a certificate from a CA outside the trust bundle', async () => {
    const [ca, other] = [await DevCertificateAuthority.create(), await DevCertificateAuthority.create('other')];
    const bundle: CertificateBundle = { ...(await issue(other)), trustPem: [ca.certPem] };
    expect(() => verifyBundle(bundle, wanted, new Date())).toThrow(/does not chain to the trust bundle/);
  });

  it('refuses a certificate without a requested name', async () => {
    const ca = await DevCertificateAuthority.create();
    const bundle = await issue(ca, { dnsNames: [] });
    expect(() => verifyBundle(bundle, wanted, new Date())).toThrow(/lacks the requested names DNS:web\.test/);
  });

  it('refuses an expired certificate and tolerates a little clock skew', async () => {
    const ca = await DevCertificateAuthority.create();
    const bundle = await issue(ca, { ttlSeconds: 60 });
    expect(() => verifyBundle(bundle, wanted, new Date(Date.now() + 120_000))).toThrow(/expired/);
    // The dev CA backdates notBefore by a minute; a host 30 s behind still accepts it.
    expect(() => verifyBundle(bundle, wanted, new Date(Date.now() - 30_000))).not.toThrow();
  });
});

describe('Renewer', () => {
  it('keeps the current certificate when a renewal is refused, then retries — on fake time', async () => {
    const ca = await DevCertificateAuthority.create();
    const other = await DevCertificateAuthority.create('rogue');
    // The renewer's clock and timers are fake (Date and setTimeout): a 600 s certificate's
    // renewal window and the backoff after a refusal pass in milliseconds of real time.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const started = Date.now();
      const attempts: number[] = [];
      let pending: Promise<unknown> | undefined;
      const source: CertificateSource = {
        kind: 'scripted',
        issue() {
          attempts.push((Date.now() - started) / 1000);
          const now = new Date();
          const issued = attempts.length === 2 ? issue(other, { now }).then((b) => ({ ...b, trustPem: [ca.certPem] })) : issue(ca, { now });
          pending = issued;
          return issued;
        },
        close: async () => [],
      };
      const store = new IdentityStore(wanted);
      const renewer = new Renewer({
        source,
        store,
        identity: wanted,
        policy: { windowStart: 0.5, windowEnd: 0.7, outageBudget: 0 },
        minBackoffSeconds: 5,
        maxBackoffSeconds: 60,
        logger: testLogger,
        random: () => 0.5,
        now: () => Date.now(),
      });
      const serials: string[] = [];
      const issuers: string[] = [];
      store.onPublish((p) => {
        serials.push(p.info.serial);
        issuers.push(p.info.issuer);
      });
      renewer.start();
      const first = renewer.waitForFirstCertificate(60_000);
      // Fake seconds pass one at a time; the clock stands still while the dev CA does its real work.
      for (let s = 0; s < 1200 && serials.length < 2; s++) {
        if (pending) await pending.catch(() => undefined);
        pending = undefined;
        await vi.advanceTimersByTimeAsync(pending ? 0 : 1000);
      }
      await renewer.stop();
      expect(serials[0]).toBe((await first).info.serial);
      expect(serials).toHaveLength(2);
      // Attempt 2, the refused one, at the middle of the window: 60 % of the lifetime from
      // notBefore, which the dev CA backdates by a minute (random 0.5 → 0.6 × 660 s − 60 s = 336 s).
      expect(attempts[0]).toBeLessThan(1);
      expect(attempts[1]).toBeGreaterThan(300);
      expect(attempts[1]).toBeLessThan(420);
      // Attempt 3 after the first backoff, full jitter: minBackoff × 2^0 × random 0.5 = 2.5 s (the
      // fake clock moves in 1 s steps, and stands still during the dev CA's work).
      const [, second = 0, third = 0] = attempts;
      expect(third - second).toBeGreaterThanOrEqual(2.5);
      expect(third - second).toBeLessThan(4);
      // The rogue certificate (attempt 2) was never published.
      expect(issuers.every((issuer) => issuer.includes('vault-mtls-sidecar dev CA'))).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it('names the last error when no certificate arrives in time', async () => {
    const source: CertificateSource = {
      kind: 'broken',
      issue: () => Promise.reject(new Error('connection refused')),
      close: async () => [],
    };
    const renewer = new Renewer({
      source,
      store: new IdentityStore(wanted),
      identity: wanted,
      policy: { windowStart: 0.5, windowEnd: 0.7, outageBudget: 0 },
      minBackoffSeconds: 0.05,
      maxBackoffSeconds: 0.1,
      logger: testLogger,
    });
    renewer.start();
    const err = await renewer.waitForFirstCertificate(300).catch((e: unknown) => e);
    await renewer.stop();
    expect(err).toMatchObject({ code: ErrorCodes.STARTUP_TIMEOUT });
    expect(String((err as Error).message)).toMatch(/no certificate after 0s; last error: connection refused/);
  });
});
