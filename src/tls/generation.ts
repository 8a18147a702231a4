/**
 * Rotation by reading, not by pushing (DESIGN.md: listeners read the *current* context). The TLS
 * material is one immutable generation at a time; whatever depends on it — an outbound pool, an
 * h2 session, a cached TLS session, an upgrade agent's socket pool — asks for the current
 * generation at dispatch or dial time and replaces itself when the id moved on. Only an inbound
 * server cannot ask (Node binds its context at accept), so one function keeps it current.
 * ghostunnel does the same with one atomic pointer and a generation counter
 * (certloader/certificate.go, session_generation.go).
 */

import type { X509Certificate } from 'node:crypto';
import type tls from 'node:tls';

/** A peer refused for who issued its certificate, as data (`reason`) and for people (`detail`). */
export interface PeerIssuerRefusal {
  /**
   * `not_a_signer`: signed by a CA we do not trust to issue identities (an intermediate the peer
   * brought); `parent_only`: by a CA the mount lists only as its issuers' parent (another mount's
   * roles); `no_certificate`: nothing published yet to compare with.
   */
  readonly reason: 'not_a_signer' | 'parent_only' | 'no_certificate';
  readonly detail: string;
}

export interface TlsGeneration {
  /** Increases with every rebuild: our certificate rotated, or the trust bundle or CRLs changed. */
  readonly id: number;
  /** Options for an inbound TLS server: our certificate, the CAs peers must chain to, the CRLs. */
  readonly server: Readonly<tls.SecureContextOptions>;
  /** The context outbound dials present. */
  readonly client: tls.SecureContext;
}

/** What the proxy needs of the TLS material (TlsContexts implements it; tests can pass their own). */
export interface TlsProvider {
  /** The generation for a connection accepted or dialled now; throws SIDECAR_NO_CERTIFICATE before the first. */
  current(): TlsGeneration;
  /** Why a peer whose chain OpenSSL accepted is refused anyway (see TlsContexts), or undefined. */
  peerIssuerProblem(leaf: X509Certificate): PeerIssuerRefusal | undefined;
  /**
   * The one push: `apply` now (when a generation exists) and with each new generation after;
   * returns the unsubscribe. Only for what cannot read at accept time — an inbound server.
   */
  keepCurrent(apply: (generation: TlsGeneration) => void): () => void;
}

/** Keeps an inbound server's context current (rotation: new handshakes use the new certificate; open connections keep theirs). */
export function keepServerCurrent(server: tls.Server, provider: TlsProvider): () => void {
  const stop = provider.keepCurrent((generation) => server.setSecureContext(generation.server));
  server.once('close', stop);
  return stop;
}

/**
 * A resource made for one TLS generation: `get()` returns the one made for the current
 * generation, making it (and handing the previous one to `retire`, which lets it drain) when the
 * generation moved on — or when `usable` says the one held can no longer serve (it closed).
 */
export class PerGeneration<T> {
  #id = -1;
  #value: T | undefined;

  constructor(
    private readonly generation: () => number,
    private readonly make: () => T,
    private readonly retire: (old: T) => void,
    private readonly usable: (value: T) => boolean = () => true,
  ) {}

  get(): T {
    const id = this.generation();
    if (this.#value === undefined || id !== this.#id || !this.usable(this.#value)) {
      const old = this.#value;
      this.#value = this.make();
      this.#id = id;
      if (old !== undefined) this.retire(old);
    }
    return this.#value;
  }

  /** The resource held, without making one (to close it at shutdown). */
  peek(): T | undefined {
    return this.#value;
  }

  /** Retires `value` if it is the one held, so the next get() makes a new one (a pool whose server certificate ended). */
  retireIfCurrent(value: T): void {
    if (value !== this.#value) return;
    this.#value = undefined;
    this.retire(value);
  }
}
