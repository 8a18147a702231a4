/**
 * Outside review (issue 27): conditional CRL reads. A 304 moved the cached read time to "now", so
 * once our clock ran ahead of Vault's by more than the skew bound learnt at the last issue (a
 * failover to a node whose clock lags), a revocation was answered 304 and then hidden for good:
 * every later 304 moved the If-Modified-Since date past it again, renewals and a fixed clock
 * included. Now the date follows the last full read, and a body older than two hours is read
 * unconditionally. Vault's If-Modified-Since rule is modelled: 304 when lastModified <= the date.
 */
import '../../src/identity/x509-setup.js';
import * as x509 from '@peculiar/x509';
import { afterEach, expect, it, vi } from 'vitest';
import { revokedSerials } from '../../src/proxy/revoked-serials.js';
import { VaultPkiSource } from '../../src/vault/pki.js';

const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const toX509Crl = (pem: string) => pem.replace(/BEGIN CRL/, 'BEGIN X509 CRL').replace(/END CRL/, 'END X509 CRL');

afterEach(() => vi.useRealTimers());

/** A Vault with one issuer and one CRL, its own clock (offset from ours), and a VaultPkiSource reading it. */
async function fakeVault() {
  vi.useFakeTimers({ toFake: ['Date'] });
  const T0 = Date.parse('2030-01-01T00:00:00Z');
  vi.setSystemTime(T0);
  let vaultOffset = 0; // Vault's clock minus ours
  const vaultNow = () => Date.now() + vaultOffset;
  const caKeys = await crypto.subtle.generateKey(alg, false, ['sign', 'verify']);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=int',
    notBefore: new Date(T0 - 86_400_000),
    notAfter: new Date(T0 + 365 * 86_400_000),
    keys: caKeys,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  const makeCrl = async (serials: string[]) =>
    toX509Crl(
      (
        await x509.X509CrlGenerator.create({
          issuer: ca.subject,
          thisUpdate: new Date(vaultNow()),
          nextUpdate: new Date(vaultNow() + 3 * 86_400_000),
          entries: serials.map((serialNumber) => ({ serialNumber, revocationDate: new Date(vaultNow()) })),
          signingKey: caKeys.privateKey,
          signingAlgorithm: alg,
        })
      ).toString('pem'),
    );
  let crl = { pem: await makeCrl([]), lastModified: vaultNow() - 3600_000 };
  const issuerModified = vaultNow() - 86_400_000;
  const crlReads: string[] = [];
  const notModified = (lastModified: number, opts?: { headers?: Record<string, string> }) => {
    const ims = opts?.headers?.['If-Modified-Since'];
    if (ims && lastModified <= Date.parse(ims)) throw Object.assign(new Error('304'), { response: { statusCode: 304, body: {} } });
  };
  const client = {
    list: async () => ({ data: { keys: ['iss1'], key_info: { iss1: { key_id: 'k1' } } } }),
    read: async (path: string, opts?: { headers?: Record<string, string> }) => {
      if (path.endsWith('/json')) {
        notModified(issuerModified, opts);
        return { data: { certificate: ca.toString('pem'), issuer_name: 'int' } };
      }
      crlReads.push(opts?.headers?.['If-Modified-Since'] ? 'conditional' : 'full');
      notModified(crl.lastModified, opts);
      return { data: { crl: crl.pem } };
    },
    write: async () => {
      const keys = await crypto.subtle.generateKey(alg, true, ['sign', 'verify']);
      // Vault backdates notBefore by 30 s (not_before_duration).
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: '0a',
        subject: 'CN=me',
        issuer: ca.subject,
        notBefore: new Date(vaultNow() - 30_000),
        notAfter: new Date(vaultNow() + 86_400_000),
        publicKey: keys.publicKey,
        signingKey: caKeys.privateKey,
        signingAlgorithm: alg,
      });
      return { data: { certificate: leaf.toString('pem'), serial_number: '0a', private_key: 'x', ca_chain: [ca.toString('pem')] } };
    },
  };
  const session = { call: (_l: string, _o: string, fn: (c: unknown) => Promise<unknown>) => fn(client) };
  const source = new VaultPkiSource(session as never, { mount: 'pki_int', role: 'r', crlMode: 'closed', method: 'issue' });
  const identity = { commonName: 'me', dnsNames: [], ipSans: [], uriSans: [], ttl: 86400 };
  return {
    crlReads,
    issue: () => source.issue(identity),
    listsRevoked: async () => revokedSerials((await source.fetchTrust()).crlPems).has('BADC0DE'),
    advance: (ms: number) => vi.setSystemTime(Date.now() + ms),
    setVaultOffset: (ms: number) => {
      vaultOffset = ms;
    },
    revoke: async () => {
      crl = { pem: await makeCrl(['0badc0de']), lastModified: vaultNow() };
    },
  };
}

const HALF_HOUR = 30 * 60_000;

it("reads a revocation a 304 could hide (Vault's clock lagging ours past the bound) at the next refresh", async () => {
  const vault = await fakeVault();
  await vault.issue(); // skew bound learnt: ~30 s
  expect(await vault.listsRevoked()).toBe(false); // full read
  // Vault fails over to a node whose clock lags ours by 2 minutes.
  vault.setVaultOffset(-120_000);
  vault.advance(HALF_HOUR);
  expect(await vault.listsRevoked()).toBe(false); // 304, rightly: nothing changed
  vault.advance(60_000);
  await vault.revoke();
  const seen: boolean[] = [];
  for (let i = 0; i < 3; i++) {
    vault.advance(HALF_HOUR);
    seen.push(await vault.listsRevoked());
  }
  await vault.issue(); // a renewal: the bound now covers the lag
  for (let i = 0; i < 3; i++) {
    vault.advance(HALF_HOUR);
    seen.push(await vault.listsRevoked());
  }
  expect(seen).toEqual([true, true, true, true, true, true]);
  // Nothing changed between most reads: still conditional.
  expect(vault.crlReads.filter((r) => r === 'conditional').length).toBeGreaterThanOrEqual(4);
});

it('reads unconditionally once its last full read is two hours old: no clock error hides a revocation longer', async () => {
  const vault = await fakeVault();
  await vault.issue();
  expect(await vault.listsRevoked()).toBe(false); // full read
  // The revocation lands at a moment a lagging Vault dates before our If-Modified-Since date.
  vault.setVaultOffset(-600_000);
  vault.advance(60_000);
  await vault.revoke();
  const seen: boolean[] = [];
  for (let i = 0; i < 5; i++) {
    vault.advance(HALF_HOUR);
    seen.push(await vault.listsRevoked());
  }
  // Hidden while the reads are conditional (the 304 Vault's rule gives), read within two hours.
  expect(seen.slice(0, 3)).toEqual([false, false, false]);
  expect(seen.at(-1)).toBe(true);
  expect(vault.crlReads.slice(0, 4)).toEqual(['full', 'conditional', 'conditional', 'conditional']);
});
