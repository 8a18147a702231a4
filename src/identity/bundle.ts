/** A certificate with its key and the CA material that goes with it, as PEM, plus what we read from it. */
import { X509Certificate } from 'node:crypto';

export interface CertificateBundle {
  /** The leaf certificate. */
  readonly certPem: string;
  /** The leaf's private key. Never logged, never written unless a user asks for a file. */
  readonly keyPem: string;
  /** Intermediates to send after the leaf (may be empty when the root issues directly). */
  readonly chainPem: readonly string[];
  /** CA certificates that peers' certificates must chain to. */
  readonly trustPem: readonly string[];
}

/** What is safe to show about a certificate: no key material. */
export interface CertificateInfo {
  readonly subject: string;
  readonly issuer: string;
  readonly serial: string;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly uris: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/**
 * The leaf followed by its intermediates, as TLS sends them. Each PEM ends in exactly one newline:
 * Vault's `certificate` has none, and PEMs glued end-to-BEGIN do not parse.
 */
export function certificateChainPem(bundle: CertificateBundle): string {
  return [bundle.certPem, ...bundle.chainPem].map((pem) => `${pem.trim()}\n`).join('');
}

/** Splits a PEM blob holding several certificates into one PEM string each. */
export function splitPemCertificates(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((c) => `${c}\n`) ?? [];
}

/**
 * Node prints SANs as `DNS:a, IP Address:1.2.3.4, URI:spiffe://x`; split into kinds. A value with
 * a comma, quote or other special character is printed as a JSON string (`URI:"a, DNS:b"`), so a
 * naive split on ", " would let one crafted SAN smuggle in another (what Node's own
 * checkServerIdentity guards against too): quoted values are read as JSON strings.
 */
export function parseSubjectAltName(san: string | undefined): Pick<CertificateInfo, 'dnsNames' | 'ipAddresses' | 'uris'> {
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  const uris: string[] = [];
  let i = 0;
  const text = san ?? '';
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon === -1) break;
    const kind = text.slice(i, colon);
    let value: string;
    let next: number;
    if (text[colon + 1] === '"') {
      // The JSON string runs to the first quote not escaped by a backslash.
      let end = colon + 2;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(text.slice(colon + 1, end + 1)) as string;
      } catch {
        value = '';
      }
      next = text.indexOf(', ', end);
    } else {
      next = text.indexOf(', ', colon);
      value = text.slice(colon + 1, next === -1 ? undefined : next);
    }
    if (kind === 'DNS') dnsNames.push(value);
    else if (kind === 'IP Address') ipAddresses.push(value);
    else if (kind === 'URI') uris.push(value);
    if (next === -1) break;
    i = next + 2;
  }
  return { dnsNames, ipAddresses, uris };
}

export function describeCertificate(cert: X509Certificate): CertificateInfo {
  return {
    subject: cert.subject.replace(/\n/g, ', '),
    issuer: cert.issuer.replace(/\n/g, ', '),
    serial: formatSerial(cert.serialNumber),
    ...parseSubjectAltName(cert.subjectAltName),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
  };
}

/** Vault prints serials as colon-separated lowercase hex (`1a:2b:...`); we use the same form. */
export function formatSerial(hex: string): string {
  const even = hex.length % 2 ? `0${hex}` : hex;
  return even.toLowerCase().match(/../g)?.join(':') ?? even.toLowerCase();
}

export function describeBundle(bundle: CertificateBundle): CertificateInfo {
  return describeCertificate(new X509Certificate(bundle.certPem));
}
