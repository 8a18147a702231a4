/**
 * Where certificates come from. A source knows nothing about listeners: it only issues a bundle
 * for the identity it was configured with. The renewer decides when to ask.
 */
import type { CertificateBundle } from './bundle.js';
import type { TrustMaterial } from './trust.js';

/** The names a certificate must carry; verify-before-publish checks an issued one against them. */
export interface RequestedIdentity {
  readonly commonName: string;
  readonly dnsNames: readonly string[];
  readonly ipSans: readonly string[];
  readonly uriSans: readonly string[];
  /** Requested lifetime in seconds. */
  readonly ttl: number;
}

export interface CertificateSource {
  /** Short name for logs and metrics: "vault", "dev". */
  readonly kind: string;
  issue(identity: RequestedIdentity): Promise<CertificateBundle>;
  /** The CA certificates peers may chain to and their CRLs; sources without one trust their bundle's CA. */
  fetchTrust?(): Promise<TrustMaterial>;
  /** A cheap fingerprint of the issuer set (Vault: the issuer ids), checked often; a change calls for fetchTrust. */
  trustVersion?(): Promise<string>;
  /** Sources that can change under us (files) call onChange when they do. */
  watch?(onChange: () => void): void;
  /** Releases what the source holds; resolves with problems worth logging (e.g. a failed revocation). */
  close(): Promise<string[]>;
}
