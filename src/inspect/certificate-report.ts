/**
 * What `cert inspect` shows about a certificate: what an operator checks by hand with
 * `openssl x509 -text` — names (the SPIFFE ID picked out), issuer, validity relative to now, key,
 * usages, fingerprints — as one plain record for both the text and the JSON output.
 */
import '../identity/x509-setup.js';
import { X509Certificate as NodeX509 } from 'node:crypto';
import { KeyUsageFlags, KeyUsagesExtension, X509Certificate } from '@peculiar/x509';
import { parseSubjectAltName } from '../identity/bundle.js';

export interface CertificateReport {
  readonly subject: string;
  readonly issuer: string;
  readonly serial: string;
  readonly spiffeId: string | undefined;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly uris: readonly string[];
  readonly notBefore: string;
  readonly notAfter: string;
  /** "valid, expires in 2h 5m", "expired 3d ago", "not valid for another 4m". */
  readonly validity: string;
  readonly key: string;
  readonly isCa: boolean;
  readonly keyUsage: readonly string[];
  readonly extendedKeyUsage: readonly string[];
  readonly sha256: string;
  readonly sha1: string;
}

const EKU_NAMES: Record<string, string> = {
  '1.3.6.1.5.5.7.3.1': 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
  '1.3.6.1.5.5.7.3.3': 'codeSigning',
  '1.3.6.1.5.5.7.3.4': 'emailProtection',
  '1.3.6.1.5.5.7.3.8': 'timeStamping',
  '1.3.6.1.5.5.7.3.9': 'OCSPSigning',
};

/** "2d 3h", "5m", "40s": the two largest units. */
export function humanDuration(ms: number): string {
  const units: [string, number][] = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ];
  const parts: string[] = [];
  let left = Math.abs(ms);
  for (const [unit, size] of units) {
    const count = Math.floor(left / size);
    if (count > 0 || (unit === 's' && parts.length === 0)) parts.push(`${count}${unit}`);
    left -= count * size;
    if (parts.length === 2) break;
  }
  return parts.join(' ');
}

function validity(notBefore: Date, notAfter: Date, now: Date): string {
  if (now < notBefore) return `NOT YET VALID: valid in ${humanDuration(notBefore.getTime() - now.getTime())}`;
  if (now >= notAfter) return `EXPIRED ${humanDuration(now.getTime() - notAfter.getTime())} ago`;
  return `valid, expires in ${humanDuration(notAfter.getTime() - now.getTime())}`;
}

function describeKey(cert: NodeX509): string {
  const key = cert.publicKey;
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') return `RSA ${details.modulusLength} bits`;
  if (key.asymmetricKeyType === 'ec')
    return `EC ${details.namedCurve === 'prime256v1' ? 'P-256' : details.namedCurve === 'secp384r1' ? 'P-384' : details.namedCurve}`;
  return String(key.asymmetricKeyType).replace(/^ed/, 'Ed');
}

function keyUsages(pem: string): string[] {
  const extension = new X509Certificate(pem).getExtension(KeyUsagesExtension);
  if (!extension) return [];
  return Object.entries(KeyUsageFlags)
    .filter(([name, bit]) => typeof bit === 'number' && Number.isNaN(Number(name)) && (extension.usages & bit) !== 0)
    .map(([name]) => name);
}

export function reportCertificate(pem: string, now: Date = new Date()): CertificateReport {
  const cert = new NodeX509(pem);
  const names = parseSubjectAltName(cert.subjectAltName);
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  return {
    subject: cert.subject.replace(/\n/g, ', '),
    issuer: cert.issuer.replace(/\n/g, ', '),
    serial: cert.serialNumber,
    spiffeId: names.uris.find((uri) => uri.startsWith('spiffe://')),
    ...names,
    notBefore: notBefore.toISOString(),
    notAfter: notAfter.toISOString(),
    validity: validity(notBefore, notAfter, now),
    key: describeKey(cert),
    isCa: cert.ca,
    keyUsage: keyUsages(pem),
    extendedKeyUsage: (cert.keyUsage ?? []).map((oid) => EKU_NAMES[oid] ?? oid),
    sha256: cert.fingerprint256,
    sha1: cert.fingerprint,
  };
}

/** The text output: one block per certificate, leaf first, labels aligned. */
export function formatReports(reports: readonly CertificateReport[]): string {
  return reports
    .map((r, i) => {
      const rows: [string, string][] = [
        ['subject', r.subject],
        ['SPIFFE ID', r.spiffeId ?? '-'],
        ['DNS names', r.dnsNames.join(', ') || '-'],
        ['IP addresses', r.ipAddresses.join(', ') || '-'],
        ['URIs', r.uris.join(', ') || '-'],
        ['issuer', r.issuer],
        ['validity', `${r.validity} (${r.notBefore} → ${r.notAfter})`],
        ['key', r.key],
        ['CA', r.isCa ? 'yes' : 'no'],
        ['key usage', r.keyUsage.join(', ') || '-'],
        ['extended key usage', r.extendedKeyUsage.join(', ') || '-'],
        ['serial', r.serial],
        ['SHA-256', r.sha256],
      ];
      const width = Math.max(...rows.map(([label]) => label.length));
      const title = i === 0 ? 'certificate' : `chain[${i}]`;
      return [`${title}:`, ...rows.map(([label, value]) => `  ${label.padEnd(width)}  ${value}`)].join('\n');
    })
    .join('\n\n');
}
