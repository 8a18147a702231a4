/**
 * Keeps the trust bundle and CRLs current: fetch from the source every `intervalSeconds`, retry
 * failures with backoff, and keep the last good material when a fetch fails. A CRL that could not
 * be refreshed past its nextUpdate would make OpenSSL refuse every handshake; in `soft` mode we
 * stop enforcing it instead (and say so), in `closed` mode we keep it and readiness drops.
 */
import type { Logger } from 'pino';
import { ErrorCodes, isSidecarError } from '../errors.js';
import { type LongTimer, MAX_TIMEOUT_MS, setLongTimeout } from '../timers.js';
import { backoffDelaySeconds } from './schedule.js';
import type { TrustMaterial, TrustStore } from './trust.js';

/** How soon a CRL that could not be read is tried again, at first; it backs off to intervalSeconds. */
const CRL_RETRY_SECONDS = 15;
/**
 * The most often a peer's handshake can make us check the issuer list (one LIST call). A peer
 * from an unknown issuer is anybody with a self-signed certificate, so what it can cause is
 * bounded here, whatever it sends, and never more than the check: the full fetch follows only
 * when the issuer set really changed, which no peer can make happen.
 */
const HINT_CHECK_GAP_MS = 30_000;
/**
 * …and at most this many times per issuer set: a stranger's handshakes, however many and however
 * long, cost Vault this many LISTs until the mount's issuers really change (which no peer can
 * cause). A rotation's own first handshakes still find it; after that the periodic check does.
 */
export const HINT_CHECKS_PER_ISSUER_SET = 3;
/**
 * Every wait (issuer check, full refresh) is its interval ±10 %: sidecars started together (a
 * rollout, a node restart) spread out instead of reading Vault in the same second forever.
 */
export const JITTER = 0.1;
/** Without an issuer list to check (files), a hint re-reads local files, at most this often. */
const HINT_LOCAL_REFRESH_GAP_MS = 5000;

export interface TrustRefresherOptions {
  readonly fetchTrust: () => Promise<TrustMaterial>;
  /** A cheap fingerprint of the issuer set, checked every `checkSeconds`; a change triggers a full refresh. */
  readonly trustVersion?: () => Promise<string>;
  readonly checkSeconds?: number;
  readonly trust: TrustStore;
  readonly intervalSeconds: number;
  readonly crlMode: 'soft' | 'closed' | 'off';
  /** True when peers can be verified only with fetched material (Vault: only the mount's issuers are trusted). */
  readonly required?: boolean;
  readonly logger: Logger;
  /** For tests: the jitter's source of randomness, in [0, 1). */
  readonly random?: () => number;
  /** The clock (ms since the epoch); Date.now by default, a fake one in tests. */
  readonly now?: () => number;
}

export class TrustRefresher {
  #timer: LongTimer | undefined;
  #check: LongTimer | undefined;
  #hintChecksLeft = HINT_CHECKS_PER_ISSUER_SET;
  /** The issuer set the hint budget above was granted for. */
  #hintVersion: string | undefined;
  #failures = 0;
  #crlRetries = 0;
  #lastHint = Number.NEGATIVE_INFINITY;
  #lastCheck = Number.NEGATIVE_INFINITY;
  #loaded = false;
  /** Why the last refresh left something out (a failed fetch, issuers without a CRL), for readiness. */
  #problem: string | undefined;
  #running = false;
  #inFlight: Promise<void> | undefined;
  /** The CRL gaps last reported, so a gap that persists is logged once, not at every refresh. */
  #reportedGaps = '';

  constructor(private readonly opts: TrustRefresherOptions) {}

  /** Fetches once and resolves when that first fetch is done (failures are logged and retried). */
  async start(): Promise<void> {
    this.#running = true;
    await this.refreshNow();
    const { trustVersion, checkSeconds } = this.opts;
    if (!trustVersion || !checkSeconds) return;
    this.#scheduleCheck(checkSeconds);
  }

  /**
   * A new issuer (a rotation) is learnt within checkSeconds (+JITTER), not at the next full
   * refresh. While refreshes fail, the backoff decides when to try again, not the check.
   */
  #scheduleCheck(checkSeconds: number): void {
    if (!this.#running) return;
    this.#check = setLongTimeout(
      () => {
        this.#checkIssuers();
        this.#scheduleCheck(checkSeconds);
      },
      Math.min(this.#jittered(checkSeconds) * 1000, MAX_TIMEOUT_MS),
      () => this.#now(),
    ).unref();
  }

  #now(): number {
    return (this.opts.now ?? Date.now)();
  }

  #jittered(seconds: number): number {
    return seconds * (1 + JITTER * (2 * (this.opts.random ?? Math.random)() - 1));
  }

  /** One LIST of the issuers; a changed set fetches the whole bundle. */
  #checkIssuers(): void {
    const { trustVersion, trust } = this.opts;
    if (!trustVersion || this.#failures > 0) return;
    this.#lastCheck = this.#now();
    trustVersion().then(
      (version) => {
        if (version === trust.material.version) return;
        this.opts.logger.info({ issuers: version }, 'the issuers changed; refreshing the trust bundle');
        void this.refreshNow();
      },
      () => undefined, // the full refresh reports Vault's failures
    );
  }

  /**
   * How long peers with the same settings may take to learn an issuer that appeared just now: two
   * of the longest rounds (with jitter) of whichever comes first, the issuer check or the full
   * refresh. A longer issuerCheckInterval costs Vault less and makes this wait longer.
   */
  get propagationMs(): number {
    const { checkSeconds, intervalSeconds } = this.opts;
    return 2 * Math.min(checkSeconds || intervalSeconds, intervalSeconds) * (1 + JITTER) * 1000;
  }

  /**
   * A hint that the bundle may be behind: a peer from an issuer we do not know (an issuer
   * rotation we have not seen yet — or any stranger with a self-signed certificate). With an
   * issuer list (Vault) it brings the next issuer check forward, at most once per
   * HINT_CHECK_GAP_MS counting the periodic checks and at most HINT_CHECKS_PER_ISSUER_SET times
   * until the issuer set changes. Without one (files) it re-reads the local files.
   */
  hint(now: number = this.#now()): void {
    if (this.opts.trustVersion && this.opts.checkSeconds) {
      if (now - this.#lastCheck < HINT_CHECK_GAP_MS) return;
      if (this.opts.trust.material.version !== this.#hintVersion) {
        this.#hintVersion = this.opts.trust.material.version;
        this.#hintChecksLeft = HINT_CHECKS_PER_ISSUER_SET;
      }
      if (this.#hintChecksLeft <= 0) return;
      this.#hintChecksLeft--;
      this.#checkIssuers();
      return;
    }
    if (now - this.#lastHint < HINT_LOCAL_REFRESH_GAP_MS) return;
    this.#lastHint = now;
    void this.refreshNow();
  }

  refreshNow(): Promise<void> {
    this.#timer?.clear();
    this.#inFlight ??= this.#refresh().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#timer?.clear();
    this.#check?.clear();
    await this.#inFlight;
  }

  /**
   * Why peers cannot be served as configured, for readiness: no trust bundle yet (when it is
   * required), or — with crl: closed — no CRL loaded at all, in which state every peer is refused.
   */
  notReadyReasons(): string[] {
    const reasons: string[] = [];
    const why = this.#problem ? ` (${this.#problem})` : '';
    if (this.opts.required && !this.#loaded) reasons.push(`the trust bundle has not been fetched yet${why}; no peer can be verified`);
    if (this.opts.crlMode === 'closed' && this.opts.trust.material.crlPems.length === 0) {
      reasons.push(`no CRL is loaded${why}; every peer is refused until one is (vault.pki.crl: closed)`);
    }
    return reasons;
  }

  /** True when CRLs are enforced but the newest one is past its nextUpdate (closed mode refuses handshakes then). */
  crlExpired(now: Date = new Date(this.#now())): boolean {
    const next = this.opts.trust.crl?.nextUpdate;
    return this.opts.crlMode === 'closed' && next !== undefined && next < now;
  }

  async #refresh(): Promise<void> {
    const { fetchTrust, trust, logger } = this.opts;
    let delaySeconds = this.opts.intervalSeconds;
    try {
      const material = await fetchTrust();
      this.#failures = 0;
      this.#loaded = true;
      trust.update(this.#applyCrlGaps(material), new Date(this.#now()));
      // A CRL that failed to load is tried again soon, backing off to the interval: Vault's
      // failure must not turn a fleet into a steady load on it.
      if (material.crlMissing?.some((gap) => gap.retry)) {
        delaySeconds = Math.min(delaySeconds, backoffDelaySeconds(this.#crlRetries++, CRL_RETRY_SECONDS, delaySeconds, Math.random()));
      } else this.#crlRetries = 0;
      // Vault may serve a CRL that is already past its nextUpdate (auto_rebuild off): same policy.
      this.#softenExpiredCrl();
      logger.debug({ cas: material.caPems.length, crls: material.crlPems.length }, 'trust bundle refreshed');
    } catch (err) {
      delaySeconds = Math.min(
        this.opts.intervalSeconds,
        backoffDelaySeconds(this.#failures++, 1, this.opts.intervalSeconds, Math.random()),
      );
      this.#problem = err instanceof Error ? err.message : String(err);
      logger.warn(
        {
          code: ErrorCodes.TRUST_REFRESH_FAILED,
          cause: isSidecarError(err) ? err.code : undefined,
          retryInSeconds: Math.round(delaySeconds),
        },
        `could not refresh the trust bundle and CRL (${err instanceof Error ? err.message : String(err)}); keeping the last ones`,
      );
      this.#softenExpiredCrl();
    }
    if (this.#running) {
      const waitSeconds = this.#failures === 0 ? this.#jittered(delaySeconds) : delaySeconds;
      this.#timer = setLongTimeout(
        () => void this.refreshNow(),
        waitSeconds * 1000,
        () => this.#now(),
      ).unref();
    }
  }

  /**
   * OpenSSL refuses a certificate whose issuer has no CRL once any CRL is loaded. In `soft` mode a
   * CRL that is not there yet (a new issuer's, a failed read) must not refuse anyone, so no CRL
   * is enforced until every issuer has one; in `closed` mode that issuer's certificates are
   * refused. Either way the operator is told once which issuer and why.
   */
  #applyCrlGaps(material: TrustMaterial): TrustMaterial {
    const gaps = material.crlMissing ?? [];
    const key = gaps.map((gap) => `${gap.issuer}: ${gap.reason}`).join('; ');
    if (key !== this.#reportedGaps && gaps.length > 0) {
      const soft = this.opts.crlMode === 'soft';
      this.opts.logger.warn(
        { code: ErrorCodes.CRL_MISSING, issuers: gaps.map((gap) => gap.issuer) },
        `no CRL for ${key}; ${
          soft
            ? 'revocation is not enforced until every issuer has one (vault.pki.crl: soft)'
            : "that issuer's certificates are refused until one is loaded (vault.pki.crl: closed)"
        }`,
      );
    }
    this.#reportedGaps = key;
    this.#problem = gaps.length > 0 ? `no CRL for ${key}` : undefined;
    return gaps.length > 0 && this.opts.crlMode === 'soft' ? { ...material, crlPems: [] } : material;
  }

  #softenExpiredCrl(): void {
    const { trust, crlMode, logger } = this.opts;
    const next = trust.crl?.nextUpdate;
    if (crlMode !== 'soft' || !next || next.getTime() > this.#now() || trust.material.crlPems.length === 0) return;
    logger.warn(
      { code: ErrorCodes.CRL_STALE, nextUpdate: next.toISOString() },
      'the CRL is past its nextUpdate and no newer one could be fetched; revocation is not enforced until one can (vault.pki.crl: closed refuses handshakes instead)',
    );
    // Only the CRLs go: the issuer version stays, or every issuer check would take the
    // unchanged issuers for new ones and fetch everything again.
    trust.update({ ...trust.material, crlPems: [] }, new Date(this.#now()));
  }
}
