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
  /** basicConstraints CA:TRUE: a CA certificate, never acceptable as a peer's own. */
  readonly ca: boolean;
}

/** The peer's SPIFFE ID: its first spiffe:// URI SAN. */
export const spiffeId = (peer: PeerIdentity): string | undefined => peer.uris.find((uri) => uri.startsWith('spiffe://'));

/** How logs and refusals name a peer: its SPIFFE ID, else its first URI or DNS name, else its subject. */
export function nameOf(peer: PeerIdentity): string {
  return spiffeId(peer) ?? peer.uris[0] ?? peer.dnsNames[0] ?? peer.subject;
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
  const subject = formatDistinguishedName(cert.subject ?? {});
  const sans = parseSubjectAltName(cert.subjectaltname);
  const values = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
  return {
    subject,
    commonNames: values(cert.subject?.CN),
    organizationalUnits: values(cert.subject?.OU),
    uris: sans.uris,
    dnsNames: sans.dnsNames,
    hash: createHash('sha256').update(cert.raw).digest('hex'),
    ca: cert.ca === true,
  };
}

/**
 * A distinguished name as RFC 4514 writes it: most specific attribute first (`CN=…,O=…,C=…`),
 * special characters escaped with `\`, control characters as `\XX`. Node gives the attributes in
 * certificate order, a repeated one as a list.
 */
export function formatDistinguishedName(name: Record<string, string | string[] | undefined>): string {
  const rdns: string[] = [];
  for (const [type, value] of Object.entries(name)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) rdns.push(`${type}=${escapeDnValue(v)}`);
  }
  return rdns.reverse().join(',');
}

function escapeDnValue(value: string): string {
  const chars = [...value];
  let out = '';
  for (const [i, ch] of chars.entries()) {
    const code = ch.codePointAt(0) ?? 0;
    // Control characters and non-ASCII as \XX UTF-8 bytes (RFC 4514 §2.4): the header stays ASCII.
    if (code < 0x20 || code >= 0x7f) out += hexBytes(ch, '\\');
    else if ('"+,;<>\\'.includes(ch) || (i === 0 && (ch === '#' || ch === ' ')) || (i === chars.length - 1 && ch === ' ')) {
      out += `\\${ch}`;
    } else out += ch;
  }
  return out;
}

const hexBytes = (ch: string, prefix: string) =>
  [...Buffer.from(ch, 'utf8')].map((b) => `${prefix}${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');

/**
 * Envoy's x-forwarded-client-cert format: `Hash=...;Subject="...";URI=...;DNS=...`. A value with
 * `,`, `;`, `=`, `"`, `\` or a space is double-quoted, with `"` and `\` escaped by a backslash, so
 * whatever a certificate's names hold, the app splits the header back into the same fields.
 */
// buildXfcc always returns a string, so the memoised form never answers undefined.
export const formatXfcc = oncePer(buildXfcc) as (peer: PeerIdentity) => string;

export function quoteXfccValue(value: string): string {
  // SAN values are IA5 (ASCII); a control character or other byte has no place in a header, so it is %-encoded.
  const safe = value.replace(/[^\x20-\x7e]/gu, (ch) => hexBytes(ch, '%'));
  return /[,;="\\\s]/.test(safe) ? `"${safe.replace(/["\\]/g, '\\$&')}"` : safe;
}

function buildXfcc(peer: PeerIdentity): string {
  const parts = [`Hash=${peer.hash}`, `Subject=${quoteXfccValue(peer.subject)}`];
  for (const uri of peer.uris) parts.push(`URI=${quoteXfccValue(uri)}`);
  for (const dns of peer.dnsNames) parts.push(`DNS=${quoteXfccValue(dns)}`);
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
