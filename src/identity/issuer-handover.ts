/**
 * Moving onto a new issuer without failing a handshake. After an issuer rotation, the first
 * sidecar to renew gets a certificate from the new issuer; a peer that does not trust that issuer
 * yet refuses it (unknown CA, or a missing CRL with revocation on) until its next trust refresh.
 * So a certificate from an issuer this sidecar has known for less than the propagation time
 * (twice the issuer check interval, by which peers checking as often have learnt it too) waits
 * in memory while the current certificate keeps serving — but never so long that the current one
 * runs out.
 *
 * A CA replaced wholesale is the opposite case: the current certificate's issuer has left the
 * mount, so peers stop trusting it as they learn that. Then holding helps nobody — renew at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { ErrorCodes } from '../errors.js';
import type { CertificateBundle } from './bundle.js';
import type { TrustStore } from './trust.js';

/** How long to hold `bundle` back, given when its CAs were first trusted here (pure, for tests). */
export function handoverDelayMs(
  bundle: CertificateBundle,
  trust: TrustStore,
  propagationMs: number,
  holdUntilAtLatest: number,
  now: number,
): number {
  let newest = 0;
  for (const pem of bundle.trustPem) newest = Math.max(newest, trust.firstSeen(pem)?.getTime() ?? now);
  return Math.max(0, Math.min(newest + propagationMs, holdUntilAtLatest) - now);
}

export interface HandoverOptions {
  readonly trust: TrustStore;
  /** Fetches the trust bundle now (the new issuer and its CRL). */
  readonly refresh: () => Promise<void>;
  readonly propagationMs: number;
  /** The latest moment to publish: the current certificate's notAfter minus the outage budget. */
  readonly holdUntilAtLatest: () => number;
  /** The certificate being served now. */
  readonly current: () => CertificateBundle | undefined;
  readonly logger: Logger;
  /** The clock (ms since the epoch); Date.now by default. */
  readonly now?: () => number;
}

/** True when the CA that issued `bundle` (the first of its chain) is no longer in the trust bundle. */
export function issuerRemoved(bundle: CertificateBundle, trust: TrustStore): boolean {
  const issuing = bundle.trustPem[0];
  return issuing !== undefined && trust.material.caPems.length > 0 && !trust.has(issuing);
}

/**
 * Renews at once when a trust refresh shows that the current certificate's issuer left the mount
 * (a CA replaced wholesale), and says so: peers drop that issuer as they refresh too.
 */
export function renewWhenIssuerRemoved(opts: {
  readonly trust: TrustStore;
  readonly current: () => CertificateBundle | undefined;
  readonly renewNow: () => boolean;
  readonly logger: Logger;
}): void {
  opts.trust.onChange(() => {
    const current = opts.current();
    if (!current || !issuerRemoved(current, opts.trust)) return;
    opts.logger.warn(
      { code: ErrorCodes.ISSUER_REMOVED },
      "the issuer of this sidecar's certificate is no longer on the PKI mount; renewing from the current issuer now (peers that have not refreshed yet refuse the new certificate until they do)",
    );
    opts.renewNow();
  });
}

export async function holdForIssuerHandover(bundle: CertificateBundle, opts: HandoverOptions, signal: AbortSignal): Promise<void> {
  // A CA we have never seen: learn it (and its CRL) now, so we trust peers that move to it too.
  if (bundle.trustPem.some((pem) => !opts.trust.firstSeen(pem))) await opts.refresh();
  const current = opts.current();
  if (current && issuerRemoved(current, opts.trust)) return;
  const delayMs = handoverDelayMs(bundle, opts.trust, opts.propagationMs, opts.holdUntilAtLatest(), (opts.now ?? Date.now)());
  if (delayMs <= 0) return;
  opts.logger.info(
    { waitSeconds: Math.ceil(delayMs / 1000) },
    'the new certificate is from an issuer peers may not trust yet; serving the current one until they do',
  );
  await sleep(delayMs, undefined, { signal }).catch(() => undefined);
}
