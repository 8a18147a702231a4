/**
 * TLS material derived from the published certificate. Built once per publication and reused by
 * every connection until the next rotation: building a context per connection (what
 * `tls.connect({cert, key, ca})` does) doubles the CPU cost of a handshake.
 */
import tls from 'node:tls';
import { ErrorCodes, SidecarError } from '../errors.js';
import type { CertificateBundle } from '../identity/bundle.js';
import type { IdentityStore, PublishedCertificate } from '../identity/store.js';
import { type TrustMaterial, TrustStore } from '../identity/trust.js';

/** TLS 1.2 is the floor; 1.3 is negotiated whenever the peer supports it. */
export const MIN_TLS_VERSION = 'TLSv1.2' as const;

/**
 * Our certificate and key, and what peers must chain to: the CA that issued us plus every CA of the
 * trust bundle (old and new issuers during a rotation), with their CRLs when revocation is enforced.
 */
export function secureContextOptions(bundle: CertificateBundle, trust: TrustMaterial): tls.SecureContextOptions {
  return {
    cert: [bundle.certPem, ...bundle.chainPem].join(''),
    key: bundle.keyPem,
    ca: [...new Set([...bundle.trustPem, ...trust.caPems])],
    ...(trust.crlPems.length > 0 ? { crl: [...trust.crlPems] } : {}),
    minVersion: MIN_TLS_VERSION,
  };
}

interface Contexts {
  readonly published: PublishedCertificate;
  readonly options: tls.SecureContextOptions;
  readonly context: tls.SecureContext;
}

type ChangeListener = () => void;

export class TlsContexts {
  #current: Contexts | undefined;
  readonly #listeners = new Set<ChangeListener>();

  constructor(
    store: IdentityStore,
    private readonly trust: TrustStore = new TrustStore(),
  ) {
    const existing = store.current();
    if (existing) this.#rebuild(existing);
    store.onPublish((published) => this.#rebuild(published));
    trust.onChange(() => {
      if (this.#current) this.#rebuild(this.#current.published);
    });
  }

  /** Options for `server.setSecureContext()` on inbound listeners. */
  serverOptions(): tls.SecureContextOptions {
    return this.#require().options;
  }

  /** The context outbound dials present; read at dial time so a rotation applies to the next dial. */
  clientContext(): tls.SecureContext {
    return this.#require().context;
  }

  onChange(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #require(): Contexts {
    if (!this.#current) {
      throw new SidecarError(ErrorCodes.NO_CERTIFICATE, 'no certificate has been published yet; wait for readiness');
    }
    return this.#current;
  }

  #rebuild(published: PublishedCertificate): void {
    const options = secureContextOptions(published.bundle, this.trust.material);
    this.#current = { published, options, context: tls.createSecureContext(options) };
    for (const listener of this.#listeners) listener();
  }
}
