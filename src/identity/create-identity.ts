/**
 * The identity room's composition: from a source, the store our certificate is published in, the
 * trust store peers are checked against, the trust refresher that keeps it current (sources that
 * serve CAs and CRLs), and the renewer — with the issuer handover between them (Vault: move onto a
 * new issuer only once peers trust it, see issuer-handover.ts). The sidecar gets these parts and
 * starts, reads and stops them; how they are wired together is decided here, once.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema/index.js';
import type { CertificateBundle } from './bundle.js';
import { requestedIdentity, type SourceParts } from './create-source.js';
import { holdForIssuerHandover, renewWhenIssuerRemoved } from './issuer-handover.js';
import { type RenewalResult, Renewer } from './renewer.js';
import { IdentityStore } from './store.js';
import { TrustStore } from './trust.js';
import { TrustRefresher } from './trust-refresher.js';

export interface Identity {
  readonly store: IdentityStore;
  readonly trust: TrustStore;
  /** Present when the source serves a trust bundle and CRLs (Vault, files). */
  readonly trustRefresher: TrustRefresher | undefined;
  readonly renewer: Renewer;
}

export interface IdentityOptions {
  readonly config: Config;
  readonly parts: SourceParts;
  readonly logger: Logger;
  /** Only the mount's issuers are trusted for peers (Vault): no peer can be verified before the first trust fetch. */
  readonly trustRequired: boolean;
  readonly recordRenewal?: (result: RenewalResult) => void;
  /** The clock (ms since the epoch); Date.now by default. */
  readonly now?: () => number;
}

export function createIdentity(opts: IdentityOptions): Identity {
  const { config, parts, logger, now } = opts;
  const { source } = parts;
  const store = new IdentityStore(requestedIdentity(config));
  const trust = new TrustStore();
  const trustRefresher = source.fetchTrust
    ? new TrustRefresher({
        fetchTrust: source.fetchTrust.bind(source),
        trust,
        // Files report their own changes (Sidecar.start); the interval is a backstop there.
        intervalSeconds: config.vault?.pki.refreshInterval ?? 300,
        crlMode: config.vault?.pki.crl ?? 'off',
        required: opts.trustRequired,
        logger: logger.child({ module: 'trust' }),
        ...(now ? { now } : {}),
        ...(source.trustVersion
          ? { trustVersion: source.trustVersion.bind(source), checkSeconds: config.vault?.pki.issuerCheckInterval ?? 15 }
          : {}),
      })
    : undefined;
  const { renewal } = config.identity;
  const current = () => store.current()?.bundle;
  // Vault (a source whose issuers change under it): move onto a new issuer only once peers trust
  // it. With files, the operator changes CA and certificate.
  const handover =
    trustRefresher && source.trustVersion
      ? (bundle: CertificateBundle, signal: AbortSignal) =>
          holdForIssuerHandover(
            bundle,
            {
              trust,
              refresh: () => trustRefresher.refreshNow(),
              propagationMs: trustRefresher.propagationMs,
              holdUntilAtLatest: () => (store.current()?.info.notAfter.getTime() ?? 0) - renewal.outageBudget * 1000,
              current,
              logger: logger.child({ module: 'renewer' }),
              ...(now ? { now } : {}),
            },
            signal,
          )
      : undefined;
  const renewer = new Renewer({
    source,
    store,
    identity: store.wanted,
    policy: renewal,
    minBackoffSeconds: renewal.minBackoff,
    maxBackoffSeconds: renewal.maxBackoff,
    logger: logger.child({ module: 'renewer', source: source.kind }),
    startupHint: parts.startupHint,
    ...(opts.recordRenewal ? { recordResult: opts.recordRenewal } : {}),
    ...(now ? { now } : {}),
    ...(handover ? { beforePublish: handover } : {}),
  });
  if (handover) {
    renewWhenIssuerRemoved({ trust, current, renewNow: () => renewer.renewNow(), logger: logger.child({ module: 'renewer' }) });
  }
  return { store, trust, trustRefresher, renewer };
}
