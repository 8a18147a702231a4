/**
 * Keeps a certificate published: issue, verify and publish, then sleep until the renewal point
 * (linkerd's `loop { certify; sleep(refresh_in) }`). A failure is logged and retried with capped
 * exponential backoff; the current certificate keeps serving meanwhile.
 */
import type { Logger } from 'pino';
import { ErrorCodes, isSidecarError, SidecarError } from '../errors.js';
import { type LongTimer, setLongTimeout } from '../timers.js';
import type { CertificateBundle } from './bundle.js';
import { backoffDelaySeconds, type RenewalPolicy, renewAt, retryCeilingSeconds } from './schedule.js';
import type { CertificateSource, RequestedIdentity } from './source.js';
import type { IdentityStore, PublishedCertificate } from './store.js';

export interface RenewerOptions {
  readonly source: CertificateSource;
  readonly store: IdentityStore;
  readonly identity: RequestedIdentity;
  readonly policy: RenewalPolicy;
  readonly minBackoffSeconds: number;
  readonly maxBackoffSeconds: number;
  readonly logger: Logger;
  readonly random?: () => number;
  /** The clock (ms since the epoch) for schedules and timers; Date.now by default, a fake one in tests. */
  readonly now?: () => number;
  /** Reports each attempt's result (metrics): success, failure, or refused by verification. */
  readonly recordResult?: (result: RenewalResult) => void;
  /** Appended to the start-up timeout message: what to check for this source. */
  readonly startupHint?: string;
  /**
   * Runs before a new certificate replaces a valid one, and may wait (peers must trust a new
   * issuer first). `signal` aborts the wait when the renewer stops.
   */
  readonly beforePublish?: (bundle: CertificateBundle, signal: AbortSignal) => Promise<void>;
}

export type RenewalResult = 'success' | 'failure' | 'refused';

const OPERATOR_ERRORS = new Set<string>([ErrorCodes.PKI_ISSUE_REJECTED, ErrorCodes.VAULT_PERMISSION_DENIED, ErrorCodes.VAULT_AUTH_FAILED]);

function describeError(err: unknown): string {
  if (isSidecarError(err)) return `${err.message} [${err.code}]`;
  return err instanceof Error ? err.message : String(err);
}

export class Renewer {
  readonly #opts: RenewerOptions;
  readonly #random: () => number;
  readonly #now: () => number;
  #timer: LongTimer | undefined;
  #failures = 0;
  #running = false;
  #inFlight: Promise<void> | undefined;
  #nextRenewal: Date | undefined;
  #lastError: unknown;
  /** Rejects pending waitForFirstCertificate() calls when the renewer stops. */
  readonly #waiters = new Set<() => void>();
  readonly #stopping = new AbortController();

  constructor(opts: RenewerOptions) {
    this.#opts = opts;
    this.#random = opts.random ?? Math.random;
    this.#now = opts.now ?? Date.now;
  }

  get nextRenewal(): Date | undefined {
    return this.#nextRenewal;
  }

  get lastError(): unknown {
    return this.#lastError;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule(0);
  }

  /** Renew at once (SIGHUP, admin). A renewal already in flight is not doubled. */
  renewNow(): boolean {
    if (!this.#running || this.#inFlight) return false;
    this.#schedule(0);
    return true;
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#stopping.abort();
    this.#timer?.clear();
    for (const abort of this.#waiters) abort();
    await this.#inFlight;
  }

  /** Resolves with the first published certificate, or rejects after `timeoutMs` naming the last error. */
  waitForFirstCertificate(timeoutMs: number): Promise<PublishedCertificate> {
    const existing = this.#opts.store.current();
    if (existing) return Promise.resolve(existing);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        unsubscribe();
        this.#waiters.delete(abort);
        const last = this.#lastError;
        const why = last === undefined ? 'no answer yet' : describeError(last);
        const hint = this.#opts.startupHint ? `; ${this.#opts.startupHint}` : '';
        reject(
          new SidecarError(ErrorCodes.STARTUP_TIMEOUT, `no certificate after ${Math.round(timeoutMs / 1000)}s; last error: ${why}${hint}`, {
            cause: last,
          }),
        );
      }, timeoutMs);
      const abort = () => {
        clearTimeout(timer);
        unsubscribe();
        reject(new SidecarError(ErrorCodes.NO_CERTIFICATE, 'stopped before a certificate was issued'));
      };
      this.#waiters.add(abort);
      const unsubscribe = this.#opts.store.onPublish((published) => {
        clearTimeout(timer);
        unsubscribe();
        this.#waiters.delete(abort);
        resolve(published);
      });
    });
  }

  #schedule(delayMs: number): void {
    this.#timer?.clear();
    this.#nextRenewal = new Date(this.#now() + delayMs);
    this.#timer = setLongTimeout(
      () => {
        this.#inFlight = this.#renewOnce().finally(() => {
          this.#inFlight = undefined;
        });
      },
      delayMs,
      this.#now,
    );
  }

  async #renewOnce(): Promise<void> {
    const { source, store, identity, policy, logger } = this.#opts;
    try {
      const bundle = await source.issue(identity);
      if (this.#opts.beforePublish && store.hasValidCertificate()) await this.#opts.beforePublish(bundle, this.#stopping.signal);
      if (!this.#running) return;
      const before = store.current();
      const published = store.publish(bundle, new Date(this.#now()));
      this.#failures = 0;
      this.#lastError = undefined;
      this.#opts.recordResult?.('success');
      const next = renewAt(published.info.notBefore, published.info.notAfter, new Date(this.#now()), this.#random(), policy);
      logger[published === before ? 'debug' : 'info'](
        {
          serial: published.info.serial,
          notAfter: published.info.notAfter.toISOString(),
          nextRenewal: next.toISOString(),
        },
        published === before ? 'certificate unchanged' : 'certificate published',
      );
      if (published !== before) warnWithoutSans(published, logger);
      if (this.#running) this.#schedule(next.getTime() - this.#now());
    } catch (err) {
      this.#lastError = err;
      this.#opts.recordResult?.(isSidecarError(err) && err.code === ErrorCodes.CERT_REFUSED ? 'refused' : 'failure');
      const current = store.current()?.info;
      // A refusal that only an operator can fix (a role without the name, a policy without the
      // path, a bad credential) is retried at the slow end of the backoff, never in a storm.
      const needsOperator = isSidecarError(err) && OPERATOR_ERRORS.has(err.code);
      // Each wait is capped by what is left of the certificate: from its last third on (or with
      // none yet), every few seconds, so Vault's return is noticed in time (issue 29).
      const ceiling = retryCeilingSeconds(current, new Date(this.#now()), this.#opts.maxBackoffSeconds, needsOperator);
      const backoff = backoffDelaySeconds(this.#failures++, this.#opts.minBackoffSeconds, ceiling, this.#random());
      const delay = Math.min(ceiling, needsOperator ? Math.max(backoff, ceiling * (0.5 + this.#random() / 2)) : backoff);
      logger.error(
        {
          code: isSidecarError(err) ? err.code : undefined,
          // The reason as data (Vault: which call, HTTP status or network error), for log queries.
          reason: isSidecarError(err) ? err.reason : undefined,
          err: isSidecarError(err) ? undefined : err,
          attempt: this.#failures,
          retryInSeconds: Math.round(delay * 10) / 10,
          currentExpires: current?.notAfter.toISOString(),
        },
        `certificate renewal failed: ${err instanceof Error ? err.message : String(err)}`,
      );
      if (current) this.#warnIfExpiring(current.notBefore, current.notAfter);
      if (this.#running) this.#schedule(delay * 1000);
    }
  }

  /** Warns once a failing renewal leaves less than a fifth of the current certificate's lifetime. */
  #warnIfExpiring(notBefore: Date, notAfter: Date): void {
    const left = notAfter.getTime() - this.#now();
    if (left > (notAfter.getTime() - notBefore.getTime()) / 5) return;
    this.#opts.logger.warn(
      { code: ErrorCodes.CERT_EXPIRING, notAfter: notAfter.toISOString(), secondsLeft: Math.max(0, Math.round(left / 1000)) },
      left > 0
        ? `the current certificate expires in ${Math.round(left / 1000)}s and could not be renewed; peers will refuse it after that`
        : 'the current certificate has expired and could not be renewed; handshakes are failing',
    );
  }
}

/** Go, Java and browsers refuse a certificate whose names are in the CN only; say so before peers fail. */
function warnWithoutSans(published: PublishedCertificate, logger: Logger): void {
  const { dnsNames, ipAddresses, uris, subject } = published.info;
  if (dnsNames.length + ipAddresses.length + uris.length > 0) return;
  logger.warn(
    { code: ErrorCodes.CERT_NO_SAN, subject },
    'the certificate has no subject alternative names: Go, Java and browsers refuse it (they ignore the CN); reissue it with DNS or URI SANs',
  );
}
