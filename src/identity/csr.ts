/**
 * A key pair made in the pod and a certificate signing request for it: with Vault's `sign`
 * endpoint only the CSR (public key and names) crosses the network, and the private key never
 * leaves this process — as Linkerd and Istio keep keys in the pod.
 */
import './x509-setup.js';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { RequestedIdentity } from './source.js';

export type KeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096';

type KeyParams = webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams;
type SignParams = webcrypto.Algorithm | webcrypto.EcdsaParams;

const ALGORITHMS: Record<KeyType, { key: KeyParams; sign: SignParams }> = {
  'ec-p256': { key: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } },
  'ec-p384': { key: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' } },
  'rsa-2048': { key: rsa(2048), sign: { name: 'RSASSA-PKCS1-v1_5' } },
  'rsa-3072': { key: rsa(3072), sign: { name: 'RSASSA-PKCS1-v1_5' } },
  'rsa-4096': { key: rsa(4096), sign: { name: 'RSASSA-PKCS1-v1_5' } },
};

function rsa(modulusLength: number): webcrypto.RsaHashedKeyGenParams {
  return { name: 'RSASSA-PKCS1-v1_5', modulusLength, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
}

export interface KeyAndCsr {
  /** PKCS#8 PEM; kept in memory, never sent anywhere. */
  readonly keyPem: string;
  readonly csrPem: string;
}

export async function createKeyAndCsr(identity: RequestedIdentity, keyType: KeyType): Promise<KeyAndCsr> {
  const { key, sign } = ALGORITHMS[keyType];
  const keys = (await webcrypto.subtle.generateKey(key, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const names: x509.JsonGeneralName[] = [
    ...identity.dnsNames.map((value) => ({ type: 'dns' as const, value })),
    ...identity.ipSans.map((value) => ({ type: 'ip' as const, value })),
    ...identity.uriSans.map((value) => ({ type: 'url' as const, value })),
  ];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [identity.commonName] }],
    keys,
    signingAlgorithm: sign,
    extensions: names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : [],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`;
  return { keyPem, csrPem: csr.toString('pem') };
}
