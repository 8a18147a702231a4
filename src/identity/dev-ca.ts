/**
 * An in-memory certificate authority for `demo`, local work and tests: ECDSA P-256 keys, a
 * self-signed root and leaf certificates with the usual extensions. Its key never leaves memory.
 * Never the default for `run`; a config must ask for `identity.source: dev`.
 */
import './x509-setup.js';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { CertificateBundle } from './bundle.js';
import type { CertificateSource, RequestedIdentity } from './source.js';

type CryptoKeyPair = webcrypto.CryptoKeyPair;

const crypto = webcrypto;

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;
/** Backdate notBefore so a peer whose clock is slightly behind still accepts the certificate. */
const BACKDATE_MS = 60_000;

function toPem(label: string, der: ArrayBuffer): string {
  const base64 = Buffer.from(der)
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${base64}\n-----END ${label}-----\n`;
}

function randomSerial(): string {
  // Positive 16-byte serial: clear the top bit so DER does not read it as negative.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return Buffer.from(bytes).toString('hex');
}

export interface LeafRequest {
  readonly commonName: string;
  readonly dnsNames?: readonly string[];
  readonly ipSans?: readonly string[];
  readonly uriSans?: readonly string[];
  readonly ttlSeconds: number;
  readonly now?: Date;
}

export class DevCertificateAuthority {
  private constructor(
    private readonly keys: CryptoKeyPair,
    private readonly root: x509.X509Certificate,
    readonly certPem: string,
  ) {}

  static async create(name = 'vault-mtls-sidecar dev CA', ttlSeconds = 7 * 86400): Promise<DevCertificateAuthority> {
    const keys = await crypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
    const now = Date.now();
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name: `CN=${name}`,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + ttlSeconds * 1000),
      keys,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    return new DevCertificateAuthority(keys, root, root.toString('pem'));
  }

  /** Issues a leaf usable as both TLS server and client (the sidecar is both). */
  async issue(request: LeafRequest): Promise<CertificateBundle> {
    const now = (request.now ?? new Date()).getTime();
    const leafKeys = await crypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
    const names: x509.JsonGeneralName[] = [
      ...(request.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
      ...(request.ipSans ?? []).map((value) => ({ type: 'ip' as const, value })),
      ...(request.uriSans ?? []).map((value) => ({ type: 'url' as const, value })),
    ];
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: `CN=${request.commonName}`,
      issuer: this.root.subject,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + request.ttlSeconds * 1000),
      publicKey: leafKeys.publicKey,
      signingKey: this.keys.privateKey,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : []),
        await x509.AuthorityKeyIdentifierExtension.create(this.keys.publicKey),
      ],
    });
    const pkcs8 = await crypto.subtle.exportKey('pkcs8', leafKeys.privateKey);
    return {
      certPem: leaf.toString('pem'),
      keyPem: toPem('PRIVATE KEY', pkcs8),
      chainPem: [],
      trustPem: [this.certPem],
    };
  }
}

/** The `dev` identity source: every issue() is signed by the in-memory CA. */
export class DevCertificateSource implements CertificateSource {
  readonly kind = 'dev';

  constructor(readonly ca: DevCertificateAuthority) {}

  issue(identity: RequestedIdentity): Promise<CertificateBundle> {
    return this.ca.issue({
      commonName: identity.commonName,
      dnsNames: identity.dnsNames,
      ipSans: identity.ipSans,
      uriSans: identity.uriSans,
      ttlSeconds: identity.ttl,
    });
  }

  async close(): Promise<string[]> {
    return [];
  }
}
