/** Pure timing functions for renewal, so schedules are unit-tested without waiting. */

export interface RenewalPolicy {
  /** The renewal window, as fractions of the certificate's lifetime (e.g. 0.5 to 0.7). */
  readonly windowStart: number;
  readonly windowEnd: number;
  /** Seconds of validity to keep in hand for a Vault outage: never renew later than notAfter minus this. */
  readonly outageBudget: number;
}

/**
 * When to renew a certificate valid until notAfter: at a random point (`random` in 0..1) of the
 * window, so a fleet issued in the same second spreads its renewals, and never later than
 * notAfter − outage budget.
 *
 * The lifetime is counted from max(notBefore, now), not from notBefore alone: Vault backdates
 * notBefore (30 s by default) against clock skew, which would otherwise put a short certificate's
 * renewal point in the past and renew it in a loop; and a notBefore a few seconds in the future
 * (the issuer's clock ahead of ours) simply starts the lifetime a little later. The budget can
 * narrow the window down to its start but never below it, so a budget larger than the certificate
 * allows cannot cause an immediate renewal loop.
 */
export function renewAt(notBefore: Date, notAfter: Date, now: Date, random: number, policy: RenewalPolicy): Date {
  const start = Math.max(notBefore.getTime(), now.getTime());
  const lifetime = Math.max(0, notAfter.getTime() - start);
  const budgetMs = Math.min(policy.outageBudget * 1000, lifetime * (1 - policy.windowStart));
  const lo = start + lifetime * policy.windowStart;
  const hi = Math.min(start + lifetime * policy.windowEnd, notAfter.getTime() - budgetMs);
  return new Date(lo + (Math.max(lo, hi) - lo) * random);
}

/** Capped exponential backoff with full jitter: a random delay in [0, min(max, base·2^attempt)]. */
export function backoffDelaySeconds(attempt: number, baseSeconds: number, maxSeconds: number, random: number): number {
  const ceiling = Math.min(maxSeconds, baseSeconds * 2 ** Math.max(0, attempt));
  // A floor of a tenth of the base keeps a run of small random draws from becoming a tight loop.
  return Math.max(baseSeconds / 10, ceiling * random);
}

/**
 * Once a certificate is in the last third of its life (or there is none, or it has expired), a
 * failed renewal is retried at least this often, so Vault's return is noticed within a few seconds
 * (issue 29: "renewed within 5 s of Vault's return whenever the certificate is within its last
 * third"). One cheap request every few seconds per pod is the price, and only while it matters.
 */
export const LAST_STRETCH_RETRY_SECONDS = 4;

/**
 * The longest a retry may wait, given how much of the current certificate is left: maxBackoff
 * early on, at most a tenth of the time left before the last third (a 60 s wait with 44 s left
 * renewed 8 s before expiry), and LAST_STRETCH_RETRY_SECONDS from the last third on.
 *
 * A refusal only an operator can fix (`operatorError`: a policy or role that does not allow it)
 * does not get the last-stretch pace, which across a fleet would be a storm of denials: it waits up
 * to maxBackoff without a certificate, and at most a tenth of the time left with one, so a fix
 * still lands before the certificate runs out.
 */
export function retryCeilingSeconds(
  validity: { notBefore: Date; notAfter: Date } | undefined,
  now: Date,
  maxSeconds: number,
  operatorError = false,
): number {
  if (!validity) return operatorError ? maxSeconds : Math.min(maxSeconds, LAST_STRETCH_RETRY_SECONDS);
  const leftSeconds = (validity.notAfter.getTime() - now.getTime()) / 1000;
  const lifetimeSeconds = (validity.notAfter.getTime() - validity.notBefore.getTime()) / 1000;
  if (!operatorError && leftSeconds <= lifetimeSeconds / 3) return Math.min(maxSeconds, LAST_STRETCH_RETRY_SECONDS);
  return Math.min(maxSeconds, Math.max(LAST_STRETCH_RETRY_SECONDS, leftSeconds / 10));
}
