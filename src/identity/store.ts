/**
 * Holds the one current certificate. `publish` verifies first and only then swaps, so a bad
 * certificate never replaces a good one. Readers take `current()` when they need it; the TLS layer
 * subscribes to rebuild its contexts once per publication rather than once per connection.
 */
import { type CertificateBundle, type CertificateInfo, describeBundle } from './bundle.js';
import type { RequestedIdentity } from './source.js';
import { verifyBundle } from './verify.js';

export interface PublishedCertificate {
  readonly bundle: CertificateBundle;
  readonly info: CertificateInfo;
  readonly publishedAt: Date;
}

type PublishListener = (published: PublishedCertificate) => void;

export class IdentityStore {
  #current: PublishedCertificate | undefined;
  readonly #listeners = new Set<PublishListener>();

  constructor(readonly wanted: RequestedIdentity) {}

  current(): PublishedCertificate | undefined {
    return this.#current;
  }

  /**
   * Verifies `bundle` against what was requested; throws SIDECAR_CERT_REFUSED and keeps the old one.
   * The same certificate again (files re-read unchanged) is not published twice: the current
   * publication is returned and nobody is told, so no context is rebuilt and no pool replaced.
   */
  publish(bundle: CertificateBundle, now: Date = new Date()): PublishedCertificate {
    verifyBundle(bundle, this.wanted, now);
    const current = this.#current;
    if (current && sameBundle(current.bundle, bundle)) return current;
    const published = { bundle, info: describeBundle(bundle), publishedAt: now };
    this.#current = published;
    for (const listener of this.#listeners) listener(published);
    return published;
  }

  /** True while a published certificate is inside its validity window. */
  hasValidCertificate(now: Date = new Date()): boolean {
    const info = this.#current?.info;
    return info !== undefined && info.notBefore.getTime() - 60_000 <= now.getTime() && now < info.notAfter;
  }

  onPublish(listener: PublishListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

function sameBundle(a: CertificateBundle, b: CertificateBundle): boolean {
  return (
    a.certPem === b.certPem &&
    a.keyPem === b.keyPem &&
    a.chainPem.join('') === b.chainPem.join('') &&
    a.trustPem.join('') === b.trustPem.join('')
  );
}
