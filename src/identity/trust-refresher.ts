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

/** How soon a CRL that could not be read is tried again. */
const CRL_RETRY_SECONDS = 15;

export interface TrustRefresherOptions {
  readonly fetchTrust: () => Promise<TrustMaterial>;
  /** A cheap fingerprint of the issuer set, checked every `checkSeconds`; a change triggers a full refresh. */
  readonly trustVersion?: () => Promise<string>;
  readonly checkSeconds?: number;
  readonly trust: TrustStore;
  readonly intervalSeconds: number;
  readonly crlMode: 'soft' | 'closed' | 'off';
  readonly logger: Logger;
}

export class TrustRefresher {
  #timer: LongTimer | undefined;
  #check: NodeJS.Timeout | undefined;
  #failures = 0;
  #lastHint = Number.NEGATIVE_INFINITY;
  #running = false;
  #inFlight: Promise<void> | undefined;
  /** The CRL gaps last reported, so a gap that persists is logged once, not at every refresh. */
  #reportedGaps = '';

  constructor(private readonly opts: TrustRefresherOptions) {}

  /** Fetches once and resolves when that first fetch is done (failures are logged and retried). */
  async start(): Promise<void> {
    this.#running = true;
    await this.refreshNow();
    const { trustVersion, checkSeconds, trust } = this.opts;
    if (!trustVersion || !checkSeconds) return;
    // A new issuer (a rotation) is learnt within checkSeconds, not at the next full refresh. While
    // refreshes fail, the backoff decides when to try again, not the check.
    this.#check = setInterval(
      () => {
        if (this.#failures > 0) return;
        trustVersion().then(
          (version) => {
            if (version === trust.material.version) return;
            this.opts.logger.info({ issuers: version }, 'the issuers changed; refreshing the trust bundle');
            void this.refreshNow();
          },
          () => undefined, // the full refresh reports Vault's failures
        );
      },
      Math.min(checkSeconds * 1000, MAX_TIMEOUT_MS),
    );
    this.#check.unref();
  }

  /**
   * How long peers with the same settings may take to learn an issuer that appeared just now: two
   * rounds of whichever comes first, the issuer check or the full refresh.
   */
  get propagationMs(): number {
    const { checkSeconds, intervalSeconds } = this.opts;
    return 2 * Math.min(checkSeconds || intervalSeconds, intervalSeconds) * 1000;
  }

  /**
   * A refresh on a hint that the bundle is behind (a peer from an unknown issuer): at most once per
   * `minGapMs`, since a peer can send such hints as fast as it connects.
   */
  refreshSoon(minGapMs: number): void {
    const now = Date.now();
    if (now - this.#lastHint < minGapMs) return;
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
    clearInterval(this.#check);
    await this.#inFlight;
  }

  /** True when CRLs are enforced but the newest one is past its nextUpdate (closed mode refuses handshakes then). */
  crlExpired(now: Date = new Date()): boolean {
    const next = this.opts.trust.crl?.nextUpdate;
    return this.opts.crlMode === 'closed' && next !== undefined && next < now;
  }

  async #refresh(): Promise<void> {
    const { fetchTrust, trust, logger } = this.opts;
    let delaySeconds = this.opts.intervalSeconds;
    try {
      const material = await fetchTrust();
      this.#failures = 0;
      trust.update(this.#applyCrlGaps(material));
      // A CRL that failed to load comes back at the next check, not a whole interval later.
      if (material.crlMissing?.some((gap) => gap.retry)) delaySeconds = Math.min(delaySeconds, CRL_RETRY_SECONDS);
      // Vault may serve a CRL that is already past its nextUpdate (auto_rebuild off): same policy.
      this.#softenExpiredCrl();
      logger.debug({ cas: material.caPems.length, crls: material.crlPems.length }, 'trust bundle refreshed');
    } catch (err) {
      delaySeconds = Math.min(
        this.opts.intervalSeconds,
        backoffDelaySeconds(this.#failures++, 1, this.opts.intervalSeconds, Math.random()),
      );
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
      this.#timer = setLongTimeout(() => void this.refreshNow(), delaySeconds * 1000).unref();
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
    return gaps.length > 0 && this.opts.crlMode === 'soft' ? { ...material, crlPems: [] } : material;
  }

  #softenExpiredCrl(): void {
    const { trust, crlMode, logger } = this.opts;
    const next = trust.crl?.nextUpdate;
    if (crlMode !== 'soft' || !next || next > new Date() || trust.material.crlPems.length === 0) return;
    logger.warn(
      { code: ErrorCodes.CRL_STALE, nextUpdate: next.toISOString() },
      'the CRL is past its nextUpdate and no newer one could be fetched; revocation is not enforced until one can (vault.pki.crl: closed refuses handshakes instead)',
    );
    trust.update({ caPems: trust.material.caPems, crlPems: [] });
  }
}
