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

/**
 * `read` memoised per key (a connection, or the identity read from it): on a keep-alive
 * connection, decoding the certificate, hashing it and formatting headers would otherwise repeat
 * for every request.
 */
function oncePer<K extends object, V>(read: (key: K) => V | undefined): (key: K) => V | undefined {
  const cache = new WeakMap<K, V | null>();
  return (key) => {
    let value = cache.get(key);
    if (value === undefined) {
      value = read(key) ?? null;
      cache.set(key, value);
    }
    return value ?? undefined;
  };
}

export const peerIdentity: (socket: TLSSocket) => PeerIdentity | undefined = oncePer(readPeerIdentity);

function readPeerIdentity(socket: TLSSocket): PeerIdentity | undefined {
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
// buildXfcc always returns a string, so the memoised form never answers undefined.
export const formatXfcc = oncePer(buildXfcc) as (peer: PeerIdentity) => string;

function buildXfcc(peer: PeerIdentity): string {
  const quote = (v: string) => (/[,;="]/.test(v) ? `"${v.replace(/"/g, '\\"')}"` : v);
  const parts = [`Hash=${peer.hash}`, `Subject=${quote(peer.subject)}`];
  for (const uri of peer.uris) parts.push(`URI=${quote(uri)}`);
  for (const dns of peer.dnsNames) parts.push(`DNS=${quote(dns)}`);
  return parts.join(';');
}

/**
 * RFC 9440 headers: `Client-Cert` is the DER certificate as a structured-field byte sequence
 * (`:base64:`), `Client-Cert-Chain` the intermediates the client sent, leaf's issuer first.
 */
type Rfc9440 = { 'client-cert': string; 'client-cert-chain'?: string };

/** Per connection, like peerIdentity(): the chain walk and base64 are not repeated per request. */
export const rfc9440Headers: (socket: TLSSocket) => Rfc9440 | undefined = oncePer(readRfc9440);

function readRfc9440(socket: TLSSocket): Rfc9440 | undefined {
  const leaf = socket.getPeerCertificate(true);
  if (!leaf?.raw) return undefined;
  const chain: string[] = [];
  // The detailed certificate links each certificate to its issuer; the root is self-signed.
  for (let ca = leaf.issuerCertificate; ca && chain.length < 8; ca = ca.issuerCertificate) {
    if (!ca.issuerCertificate || ca.issuerCertificate.fingerprint256 === ca.fingerprint256) break;
    chain.push(`:${ca.raw.toString('base64')}:`);
  }
  return {
    'client-cert': `:${leaf.raw.toString('base64')}:`,
    ...(chain.length > 0 ? { 'client-cert-chain': chain.join(', ') } : {}),
  };
}
