/**
 * What peers' certificates are checked against: the CA certificates of every issuer on the PKI
 * mount (Vault keeps old issuers after a rotation, so old and new are trusted together) and their
 * CRLs. Kept apart from the sidecar's own certificate because it changes on its own schedule.
 */
export interface TrustMaterial {
  readonly caPems: readonly string[];
  /**
   * The CAs that issue on the source itself (Vault: issuers whose key is on the mount), the only
   * ones a peer's leaf may be signed by directly; caPems when omitted.
   */
  readonly signerPems?: readonly string[] | undefined;
  readonly crlPems: readonly string[];
  /** The earliest nextUpdate among crlPems, read by the source that fetched them. */
  readonly crlNextUpdate?: Date | undefined;
  /** Issuers trusted without a CRL that would cover their certificates (see TrustRefresher for what follows). */
  readonly crlMissing?: readonly CrlGap[] | undefined;
  /** The source's fingerprint of the issuer set this material was fetched from (see CertificateSource.trustVersion). */
  readonly version?: string | undefined;
}

/** An issuer whose certificates no loaded CRL covers, and why. */
export interface CrlGap {
  readonly issuer: string;
  readonly reason: string;
  /** True when a later fetch may find it (a failed read), false when it never will (no key on the mount). */
  readonly retry: boolean;
}

export interface CrlState {
  readonly fetchedAt: Date;
  /** The earliest nextUpdate among the CRLs; past it, OpenSSL refuses every handshake the CRL covers. */
  readonly nextUpdate: Date | undefined;
}

type Listener = () => void;

/** Where the CRLs in force come from, and news of their change (to close connections a new CRL revokes). */
export interface CrlSource {
  crlPems(): readonly string[];
  onChange(listener: () => void): unknown;
}

/** The trust store's CRLs, as connection deadlines read them. */
export function crlsOf(trust: TrustStore): CrlSource {
  return { crlPems: () => trust.material.crlPems, onChange: (listener) => trust.onChange(listener) };
}

export class TrustStore {
  #material: TrustMaterial = { caPems: [], crlPems: [] };
  #crl: CrlState | undefined;
  readonly #listeners = new Set<Listener>();
  /** When each CA certificate first appeared in the bundle (ms), to know how long peers have had to learn it. */
  readonly #firstSeen = new Map<string, number>();

  get material(): TrustMaterial {
    return this.#material;
  }

  get crl(): CrlState | undefined {
    return this.#crl;
  }

  /** True when `caPem` is in the current bundle. */
  has(caPem: string): boolean {
    const wanted = caPem.trim();
    return this.#material.caPems.some((pem) => pem.trim() === wanted);
  }

  /** When `caPem` first appeared in the trust bundle; undefined while it is not in it. */
  firstSeen(caPem: string): Date | undefined {
    const at = this.#firstSeen.get(caPem.trim());
    return at === undefined ? undefined : new Date(at);
  }

  /** Replaces the material; listeners run only when something changed. */
  update(material: TrustMaterial, now: Date = new Date()): void {
    // CAs of the first fetch were on the mount before we started: peers have had them all along.
    const seenAt = this.#firstSeen.size === 0 ? 0 : now.getTime();
    for (const pem of material.caPems) if (!this.#firstSeen.has(pem.trim())) this.#firstSeen.set(pem.trim(), seenAt);
    if (material.crlPems.length > 0) this.#crl = { fetchedAt: now, nextUpdate: material.crlNextUpdate };
    const changed =
      material.caPems.join('') !== this.#material.caPems.join('') ||
      (material.signerPems ?? []).join('') !== (this.#material.signerPems ?? []).join('') ||
      material.crlPems.join('') !== this.#material.crlPems.join('');
    this.#material = material;
    if (changed) for (const listener of this.#listeners) listener();
  }

  onChange(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
