/**
 * TLS material derived from the published certificate. Built once per publication and reused by
 * every connection until the next rotation: building a context per connection (what
 * `tls.connect({cert, key, ca})` does) doubles the CPU cost of a handshake.
 */
import { constants } from 'node:crypto';
import tls from 'node:tls';
import { ErrorCodes, SidecarError } from '../errors.js';
import { type CertificateBundle, certificateChainPem } from '../identity/bundle.js';
import type { IdentityStore, PublishedCertificate } from '../identity/store.js';
import { type TrustMaterial, TrustStore } from '../identity/trust.js';

export interface TlsPolicy {
  readonly profile: 'intermediate' | 'modern';
  /** OpenSSL cipher list for TLS 1.2, replacing the profile's. */
  readonly ciphers?: string | undefined;
}

export const DEFAULT_TLS_POLICY: TlsPolicy = { profile: 'intermediate' };

/** TLS 1.3 suites: all AEAD; named explicitly so a custom TLS 1.2 list never turns TLS 1.3 off. */
const TLS13_SUITES = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';
/**
 * Mozilla's "intermediate" TLS 1.2 suites without the finite-field DHE ones: forward secrecy from
 * ECDHE, AEAD only. Node's default list also accepts CBC and static-RSA suites (no forward
 * secrecy, padding-oracle history), which a TLS scan reports as weak.
 */
const INTERMEDIATE_TLS12_SUITES = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** Protocol versions, suites and options every context gets, inbound and outbound alike. */
export function policyOptions(policy: TlsPolicy): tls.SecureContextOptions {
  return {
    minVersion: policy.profile === 'modern' ? 'TLSv1.3' : 'TLSv1.2',
    ciphers: `${TLS13_SUITES}:${policy.ciphers ?? INTERMEDIATE_TLS12_SUITES}`,
    // No renegotiation in either direction: it has been a DoS and injection vector, and nothing
    // this sidecar talks to needs it (TLS 1.3 has none). Sockets also call disableRenegotiation().
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
  };
}

/**
 * Our certificate and key, and what peers must chain to: the CA that issued us plus every CA of the
 * trust bundle (old and new issuers during a rotation), with their CRLs when revocation is enforced.
 */
export function secureContextOptions(bundle: CertificateBundle, trust: TrustMaterial, policy: TlsPolicy): tls.SecureContextOptions {
  return {
    cert: certificateChainPem(bundle),
    key: bundle.keyPem,
    ca: [...new Set([...bundle.trustPem, ...trust.caPems])],
    ...(trust.crlPems.length > 0 ? { crl: [...trust.crlPems] } : {}),
    ...policyOptions(policy),
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
    private readonly policy: TlsPolicy = DEFAULT_TLS_POLICY,
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
    const options = secureContextOptions(published.bundle, this.trust.material, this.policy);
    this.#current = { published, options, context: tls.createSecureContext(options) };
    for (const listener of this.#listeners) listener();
  }
}
