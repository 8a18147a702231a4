/**
 * TLS material derived from the published certificate. Built once per publication and reused by
 * every connection until the next rotation: building a context per connection (what
 * `tls.connect({cert, key, ca})` does) doubles the CPU cost of a handshake.
 */
import { constants, X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { ErrorCodes, SidecarError } from '../errors.js';
import { type CertificateBundle, certificateChainPem } from '../identity/bundle.js';
import type { IdentityStore, PublishedCertificate } from '../identity/store.js';
import { type TrustMaterial, TrustStore } from '../identity/trust.js';
import type { PeerIssuerRefusal, TlsGeneration, TlsProvider } from './generation.js';

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

/** Which CAs peers are checked against, beyond what OpenSSL's chain building does. */
export interface PeerTrust {
  /**
   * `listed`: only the trust bundle's CAs (Vault: the issuers the mount lists). The CA chain that
   * came with our own certificate (Vault's `ca_chain`, an answer from whatever served the issuance)
   * only checks that certificate and never anchors a peer. `bundle`: our certificate's CA too
   * (files and dev, where both come from the operator's own files or CA).
   */
  readonly anchors: 'listed' | 'bundle';
  /**
   * True: a peer's leaf must be signed by one of the trusted CAs itself. OpenSSL would also accept
   * a leaf signed by an intermediate the peer sends along, so one CA:TRUE certificate under a
   * trusted CA could mint any identity. False only with identity.files.peerIntermediates.
   */
  readonly directIssuer: boolean;
  /** crl: closed — see crl-sentinel.ts: revocation is checked even while no CRL is loaded. */
  readonly crlSentinel?: string | undefined;
}

export const DEFAULT_PEER_TRUST: PeerTrust = { anchors: 'bundle', directIssuer: true };

/** The CAs a peer's chain may end in: the trust bundle (old and new issuers during a rotation), and our own CA unless `listed`. */
function anchorsOf(bundle: CertificateBundle, trust: TrustMaterial, peerTrust: PeerTrust): string[] {
  return [...new Set(peerTrust.anchors === 'listed' ? trust.caPems : [...bundle.trustPem, ...trust.caPems])];
}

/**
 * Our certificate and key, and what peers must chain to, with the CRLs when revocation is
 * enforced (and, in closed mode, the sentinel that keeps it enforced with none loaded).
 */
export function secureContextOptions(
  bundle: CertificateBundle,
  trust: TrustMaterial,
  policy: TlsPolicy,
  peerTrust: PeerTrust = DEFAULT_PEER_TRUST,
): tls.SecureContextOptions {
  const crl = [...trust.crlPems, ...(peerTrust.crlSentinel ? [peerTrust.crlSentinel] : [])];
  return {
    cert: certificateChainPem(bundle),
    key: bundle.keyPem,
    ca: anchorsOf(bundle, trust, peerTrust),
    ...(crl.length > 0 ? { crl } : {}),
    ...policyOptions(policy),
  };
}

interface Contexts {
  readonly published: PublishedCertificate;
  readonly generation: TlsGeneration;
  /** The CAs a peer's leaf may be signed by; undefined when any chain OpenSSL accepts will do. */
  readonly issuers: readonly X509Certificate[] | undefined;
  /** Listed CAs that do not issue on the source (Vault: keyless parents), to name them in a refusal. */
  readonly parents: readonly X509Certificate[];
}

type Apply = (generation: TlsGeneration) => void;

export class TlsContexts implements TlsProvider {
  #current: Contexts | undefined;
  #nextId = 1;
  /** keepServerCurrent's inbound servers: the only ones told of a new generation. */
  readonly #keepers = new Set<Apply>();

  constructor(
    store: IdentityStore,
    private readonly trust: TrustStore = new TrustStore(),
    private readonly policy: TlsPolicy = DEFAULT_TLS_POLICY,
    private readonly peerTrust: PeerTrust = DEFAULT_PEER_TRUST,
  ) {
    const existing = store.current();
    if (existing) this.#rebuild(existing);
    store.onPublish((published) => this.#rebuild(published));
    trust.onChange(() => {
      if (this.#current) this.#rebuild(this.#current.published);
    });
  }

  /** The current generation, read at accept and dial time so a rotation applies to the next connection. */
  current(): TlsGeneration {
    if (!this.#current) {
      throw new SidecarError(ErrorCodes.NO_CERTIFICATE, 'no certificate has been published yet; wait for readiness');
    }
    return this.#current.generation;
  }

  /**
   * Why a peer whose chain OpenSSL accepted is refused anyway, or undefined: its leaf must be
   * signed by a trusted CA itself, not by an intermediate it brought (see PeerTrust.directIssuer).
   * The signature is checked here, not only the names, so a look-alike issuer does not pass.
   */
  peerIssuerProblem(leaf: X509Certificate): PeerIssuerRefusal | undefined {
    const issuers = this.#current?.issuers;
    if (!issuers) return this.#current ? undefined : { reason: 'no_certificate', detail: 'no certificate has been published yet' };
    const signedBy = (ca: X509Certificate) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
    if (issuers.some(signedBy)) return undefined;
    if (this.#current?.parents.some(signedBy)) {
      return {
        reason: 'parent_only',
        detail: `its certificate was issued directly by "${leaf.issuer.replace(/\n/g, ', ')}", which the mount lists only as the parent of its issuers (its key is not on the mount), so the certificate came from another mount's roles`,
      };
    }
    return {
      reason: 'not_a_signer',
      detail: `its certificate was issued by "${leaf.issuer.replace(/\n/g, ', ')}", which is not a trusted CA (an intermediate the peer brought is never trusted to issue identities)`,
    };
  }

  keepCurrent(apply: Apply): () => void {
    this.#keepers.add(apply);
    if (this.#current) apply(this.#current.generation);
    return () => this.#keepers.delete(apply);
  }

  #rebuild(published: PublishedCertificate): void {
    const { bundle } = published;
    const options = secureContextOptions(bundle, this.trust.material, this.policy, this.peerTrust);
    // With `bundle` anchors the operator's own chain (files' intermediates) may issue peers too.
    const issuerPems =
      this.peerTrust.anchors === 'listed'
        ? (this.trust.material.signerPems ?? this.trust.material.caPems)
        : [...anchorsOf(bundle, this.trust.material, this.peerTrust), ...bundle.chainPem];
    const issuers = this.peerTrust.directIssuer ? issuerPems.map((pem) => new X509Certificate(pem)) : undefined;
    const parents = issuers
      ? this.trust.material.caPems.filter((pem) => !issuerPems.includes(pem)).map((pem) => new X509Certificate(pem))
      : [];
    const generation: TlsGeneration = Object.freeze({
      id: this.#nextId++,
      server: Object.freeze(options),
      client: tls.createSecureContext(options),
    });
    this.#current = { published, generation, issuers, parents };
    for (const apply of this.#keepers) apply(generation);
  }
}
