/**
 * What makes `crl: closed` closed when no CRL is loaded. Node turns on OpenSSL's CRL checking
 * (CRL_CHECK | CRL_CHECK_ALL) only when a context is given at least one CRL, and with none it
 * checks no revocation at all: the state in which every CRL read failed would serve revoked
 * peers. So closed contexts always carry this CRL too: it is signed by a key made here and thrown
 * away, under a name no CA has, so it covers no certificate — but with it loaded, a certificate
 * whose issuer has no CRL is refused ("unable to get certificate CRL").
 */
import '../identity/x509-setup.js';
import { randomUUID, webcrypto } from 'node:crypto';
import { X509CrlGenerator } from '@peculiar/x509';

const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

export async function createCrlSentinel(now: Date = new Date()): Promise<string> {
  const keys = await webcrypto.subtle.generateKey(algorithm, false, ['sign', 'verify']);
  const crl = await X509CrlGenerator.create({
    issuer: `CN=vault-mtls-sidecar crl closed sentinel ${randomUUID()}`,
    thisUpdate: now,
    // OpenSSL reads a CRL's dates only when it covers a certificate, which this one never does.
    nextUpdate: new Date(now.getTime() + 100 * 365 * 86_400_000),
    signingAlgorithm: algorithm,
    signingKey: keys.privateKey,
  });
  // The library labels its PEM "CRL"; OpenSSL reads only "X509 CRL".
  const base64 = Buffer.from(crl.rawData).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN X509 CRL-----\n${base64.trimEnd()}\n-----END X509 CRL-----\n`;
}
