/** Verify-before-publish and the renewer's failure handling, with the in-memory dev CA. */
import { describe, expect, it } from 'vitest';
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
  it('keeps the current certificate when a renewal is refused, then retries', async () => {
    const ca = await DevCertificateAuthority.create();
    const other = await DevCertificateAuthority.create('rogue');
    let calls = 0;
    const source: CertificateSource = {
      kind: 'scripted',
      async issue() {
        calls++;
        if (calls === 2) return { ...(await issue(other)), trustPem: [ca.certPem] };
        return issue(ca);
      },
      close: async () => [],
    };
    const store = new IdentityStore(wanted);
    const renewer = new Renewer({
      source,
      store,
      identity: wanted,
      // Renew almost at once so the test does not wait.
      policy: { windowStart: 0.001, windowEnd: 0.002, outageBudget: 0 },
      minBackoffSeconds: 0.05,
      maxBackoffSeconds: 0.1,
      logger: testLogger,
      random: () => 0.5,
    });
    const serials: string[] = [];
    const issuers: string[] = [];
    store.onPublish((p) => {
      serials.push(p.info.serial);
      issuers.push(p.info.issuer);
    });
    renewer.start();
    const first = await renewer.waitForFirstCertificate(5000);
    // The next renewal (call 2) is refused; call 3 succeeds after a backoff.
    const deadline = Date.now() + 60_000;
    while (serials.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await renewer.stop();
    expect(calls).toBeGreaterThanOrEqual(3);
    expect(serials[0]).toBe(first.info.serial);
    expect(serials.length).toBeGreaterThanOrEqual(2);
    // The rogue certificate (call 2) was never published.
    expect(issuers.every((issuer) => issuer.includes('vault-mtls-sidecar dev CA'))).toBe(true);
  }, 70_000);

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
