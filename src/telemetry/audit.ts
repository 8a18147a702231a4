/**
 * Audit events: one log line per rejected handshake or denied request, with the listener, the
 * remote address, the peer identity when known and the reason. A token bucket per event, listener
 * and reason keeps a scanner from flooding the log; what is held back is counted and reported in
 * the next line that gets through (and in a summary line), while the metrics still count every
 * event. Per reason, not per event: a flood of handshakes without a certificate must not hold back
 * the one `revoked` or `ca_as_leaf` line that matters. Reasons that vary without end (a denial
 * names its path) share one bucket past MAX_REASONS, so the buckets stay bounded.
 * Per-request warnings (app or upstream unreachable, bad requests) go through the same buckets
 * with `warn()`: a down app answered 5,000 times in 10 s is a few lines, not 5,000.
 */
import type { Logger } from 'pino';

export interface AuditEvent {
  /** Stable event name, e.g. tls_handshake_rejected, upstream_handshake_failed. */
  readonly event: string;
  readonly listener: string;
  readonly remoteAddress?: string | undefined;
  readonly peer?: string | undefined;
  readonly reason: string;
  /** The underlying error code or message, for whoever investigates. */
  readonly detail?: string | undefined;
}

export interface AuditLimits {
  /** Events logged back to back before limiting starts. */
  readonly burst: number;
  /** Steady rate allowed after the burst. */
  readonly perSecond: number;
}

interface Bucket {
  readonly event: string;
  readonly listener: string;
  /** undefined: the bucket shared by the reasons past MAX_REASONS. */
  readonly reason: string | undefined;
  tokens: number;
  updatedAt: number;
  suppressed: number;
}

/** Distinct reasons with a bucket of their own, per event and listener; later ones share one. */
export const MAX_REASONS = 32;

export class AuditLog {
  readonly #buckets = new Map<string, Bucket>();
  /** Reasons with their own bucket, per `event/listener`. */
  readonly #reasons = new Map<string, number>();
  readonly #summary: NodeJS.Timeout;

  constructor(
    private readonly logger: Logger,
    private readonly limits: AuditLimits = { burst: 20, perSecond: 2 },
    private readonly now: () => number = Date.now,
  ) {
    this.#summary = setInterval(() => this.flush(), 10_000);
    this.#summary.unref();
  }

  /** A security event (refused handshake, denied request): logged with `audit: true`. */
  record(event: AuditEvent, message: string): void {
    this.#log(event, message, true);
  }

  /** An operational warning that can repeat per request or per connection. */
  warn(event: AuditEvent, message: string): void {
    this.#log(event, message, false);
  }

  #log(event: AuditEvent, message: string, audit: boolean): void {
    const bucket = this.#refill(event);
    if (bucket.tokens < 1) {
      bucket.suppressed++;
      return;
    }
    bucket.tokens -= 1;
    const suppressed = bucket.suppressed;
    bucket.suppressed = 0;
    this.logger.warn({ ...(audit ? { audit } : {}), ...event, ...(suppressed > 0 ? { suppressedBefore: suppressed } : {}) }, message);
  }

  /** Logs one summary line per event kind that had events held back. */
  flush(): void {
    for (const bucket of this.#buckets.values()) {
      if (bucket.suppressed === 0) continue;
      const { event, listener, reason } = bucket;
      this.logger.warn(
        { event, listener, ...(reason === undefined ? {} : { reason }), suppressed: bucket.suppressed },
        'log lines suppressed by rate limit',
      );
      bucket.suppressed = 0;
    }
  }

  close(): void {
    clearInterval(this.#summary);
    this.flush();
  }

  #refill({ event, listener, reason }: AuditEvent): Bucket {
    const now = this.now();
    // Event and listener names are ours (no NUL), so a reason can never make two keys collide.
    const kind = `${event}\0${listener}`;
    let key = `${kind}\0${reason}`;
    let bucket = this.#buckets.get(key);
    if (!bucket) {
      const reasons = this.#reasons.get(kind) ?? 0;
      const own = reasons < MAX_REASONS;
      if (own) this.#reasons.set(kind, reasons + 1);
      else key = kind;
      bucket = this.#buckets.get(key);
      if (!bucket) {
        bucket = { event, listener, reason: own ? reason : undefined, tokens: this.limits.burst, updatedAt: now, suppressed: 0 };
        this.#buckets.set(key, bucket);
        return bucket;
      }
    }
    const elapsed = (now - bucket.updatedAt) / 1000;
    bucket.tokens = Math.min(this.limits.burst, bucket.tokens + elapsed * this.limits.perSecond);
    bucket.updatedAt = now;
    return bucket;
  }
}
