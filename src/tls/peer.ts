/** Who is on the other end of a verified TLS connection, in the forms the app is told. */
import { createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { parseSubjectAltName } from '../identity/bundle.js';

export interface PeerIdentity {
  readonly subject: string;
  readonly commonNames: readonly string[];
  readonly organizationalUnits: readonly string[];
  readonly uris: readonly string[];
  readonly dnsNames: readonly string[];
  /** SHA-256 of the DER certificate, hex. */
  readonly hash: string;
}

export function peerIdentity(socket: TLSSocket): PeerIdentity | undefined {
  const cert = socket.getPeerCertificate();
  if (!cert?.raw) return undefined;
  const subject = Object.entries(cert.subject ?? {})
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`)
    .join(',');
  const sans = parseSubjectAltName(cert.subjectaltname);
  const values = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
  return {
    subject,
    commonNames: values(cert.subject?.CN),
    organizationalUnits: values(cert.subject?.OU),
    uris: sans.uris,
    dnsNames: sans.dnsNames,
    hash: createHash('sha256').update(cert.raw).digest('hex'),
  };
}

/**
 * Envoy's x-forwarded-client-cert format: `Hash=...;Subject="...";URI=...;DNS=...`.
 * Values with `,;=` are quoted so the app can split safely.
 */
export function formatXfcc(peer: PeerIdentity): string {
  const quote = (v: string) => (/[,;="]/.test(v) ? `"${v.replace(/"/g, '\\"')}"` : v);
  const parts = [`Hash=${peer.hash}`, `Subject=${quote(peer.subject)}`];
  for (const uri of peer.uris) parts.push(`URI=${quote(uri)}`);
  for (const dns of peer.dnsNames) parts.push(`DNS=${quote(dns)}`);
  return parts.join(';');
}
