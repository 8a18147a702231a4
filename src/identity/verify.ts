/**
 * Verify before publish: a new certificate must match its key, be inside its validity window,
 * chain to the trust bundle and carry every name that was asked for. Anything else is refused so
 * the old certificate keeps serving (linkerd's creds store, ghostunnel's "old state is kept").
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { ErrorCodes, SidecarError } from '../errors.js';
import { type CertificateBundle, certificateChainPem, parseSubjectAltName } from './bundle.js';
import type { RequestedIdentity } from './source.js';

/** A notBefore this far in the future is tolerated: Vault and the pod may disagree on the time. */
const CLOCK_SKEW_MS = 60_000;
const MAX_CHAIN_DEPTH = 8;

function refuse(reason: string): never {
  throw new SidecarError(ErrorCodes.CERT_REFUSED, `new certificate refused: ${reason}; the current one stays in use`);
}

/** Why the leaf does not chain to the bundle's trust anchors (through its intermediates), or undefined when it does. */
export function chainProblem(leaf: X509Certificate, bundle: CertificateBundle): string | undefined {
  const trust = bundle.trustPem.map((pem) => new X509Certificate(pem));
  if (trust.length === 0) return 'the trust bundle is empty';
  const pool = [...bundle.chainPem.map((pem) => new X509Certificate(pem)), ...trust];
  let current = leaf;
  for (let depth = 0; depth < MAX_CHAIN_DEPTH; depth++) {
    if (trust.some((anchor) => anchor.raw.equals(current.raw))) return undefined;
    const issuer = pool.find((c) => current.checkIssued(c) && current.verify(c.publicKey));
    if (!issuer) return `it does not chain to the trust bundle (no issuer found for "${current.subject.replace(/\n/g, ', ')}")`;
    if (issuer.raw.equals(current.raw)) return 'it chains to a self-signed certificate outside the trust bundle';
    current = issuer;
  }
  return 'its chain is too long';
}

/** Whether the private key goes with the leaf: undefined when it does. */
export function keyProblem(leaf: X509Certificate, keyPem: string): 'mismatch' | 'unparsable' | undefined {
  try {
    return leaf.checkPrivateKey(createPrivateKey(keyPem)) ? undefined : 'mismatch';
  } catch {
    return 'unparsable';
  }
}

function verifyNames(leaf: X509Certificate, wanted: RequestedIdentity): void {
  const sans = parseSubjectAltName(leaf.subjectAltName);
  const missing = [
    ...wanted.dnsNames.filter((n) => !sans.dnsNames.includes(n)).map((n) => `DNS:${n}`),
    ...wanted.ipSans.filter((n) => !sans.ipAddresses.includes(n)).map((n) => `IP:${n}`),
    ...wanted.uriSans.filter((n) => !sans.uris.includes(n)).map((n) => `URI:${n}`),
  ];
  if (missing.length > 0) refuse(`it lacks the requested names ${missing.join(', ')}`);
}

export function verifyBundle(bundle: CertificateBundle, wanted: RequestedIdentity, now: Date): void {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(bundle.certPem);
  } catch {
    refuse('it is not a valid PEM certificate');
  }
  const wrongKey = keyProblem(leaf, bundle.keyPem);
  if (wrongKey === 'unparsable') refuse('its private key cannot be parsed');
  if (wrongKey === 'mismatch') refuse('its private key does not match the certificate');
  const notBefore = new Date(leaf.validFrom).getTime();
  const notAfter = new Date(leaf.validTo).getTime();
  if (notAfter <= now.getTime()) refuse(`it expired at ${new Date(notAfter).toISOString()}`);
  if (notBefore > now.getTime() + CLOCK_SKEW_MS) {
    refuse(`it is not valid before ${new Date(notBefore).toISOString()}; check the clocks of Vault and this host`);
  }
  const unchained = chainProblem(leaf, bundle);
  if (unchained) refuse(unchained);
  verifyNames(leaf, wanted);
  // What TLS will load, loaded once here: a chain or key OpenSSL refuses must not get published.
  try {
    createSecureContext({ cert: certificateChainPem(bundle), key: bundle.keyPem });
  } catch (err) {
    refuse(`TLS cannot load it (${err instanceof Error ? err.message : String(err)})`);
  }
}
