/** Pure timing functions for renewal, so schedules are unit-tested without waiting. */

export interface RenewalPolicy {
  /** Target point in the lifetime, e.g. 2/3. */
  readonly fraction: number;
  /** Half-width of the random window around `fraction`, as a fraction of the lifetime. */
  readonly jitter: number;
}

/**
 * When to renew a certificate valid from notBefore to notAfter: at `fraction ± jitter` of its
 * lifetime, chosen by `random` (0..1) so a fleet issued in the same second spreads its renewals.
 * Never earlier than `now` (a certificate already past its point renews at once).
 */
export function renewAt(notBefore: Date, notAfter: Date, now: Date, random: number, policy: RenewalPolicy): Date {
  const start = notBefore.getTime();
  const lifetime = Math.max(0, notAfter.getTime() - start);
  const point = Math.min(0.95, Math.max(0.05, policy.fraction + (random * 2 - 1) * policy.jitter));
  return new Date(Math.max(now.getTime(), start + lifetime * point));
}

/** Capped exponential backoff with full jitter: a random delay in [0, min(max, base·2^attempt)]. */
export function backoffDelaySeconds(attempt: number, baseSeconds: number, maxSeconds: number, random: number): number {
  const ceiling = Math.min(maxSeconds, baseSeconds * 2 ** Math.max(0, attempt));
  // A floor of a tenth of the base keeps a run of small random draws from becoming a tight loop.
  return Math.max(baseSeconds / 10, ceiling * random);
}
