/**
 * Composes the parts in the order data flows — config → identity → TLS contexts → listeners — and
 * starts and stops them in that order. The admin server comes up first so probes get an honest
 * "not ready" while the first certificate is on its way.
 */
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { AdminServer } from './admin/server.js';
import { formatHostPort } from './config/parse.js';
import type { Config } from './config/schema/index.js';
import { ErrorCodes, isSidecarError } from './errors.js';
import { createIdentity } from './identity/create-identity.js';
import { createSource, type SourceParts } from './identity/create-source.js';
import type { Renewer } from './identity/renewer.js';
import type { CertificateSource } from './identity/source.js';
import type { IdentityStore } from './identity/store.js';
import { crlsOf, type TrustStore } from './identity/trust.js';
import type { TrustRefresher } from './identity/trust-refresher.js';
import { youngGarbage } from './memory/young-garbage.js';
import { createListeners } from './proxy/create-listeners.js';
import type { Listener, ListenerDeps } from './proxy/listener-types.js';
import { AuditLog } from './telemetry/audit.js';
import { Metrics } from './telemetry/metrics.js';
import { type PeerTrust, TlsContexts } from './tls/contexts.js';
import { peerTrustFor } from './tls/peer-trust.js';

export interface SidecarOptions {
  /** Overrides the source the config names (the demo shares one dev CA with its client). */
  readonly source?: CertificateSource;
  /** Audit events go here (tests count them); the main logger otherwise. */
  readonly auditLogger?: Logger;
}

export class Sidecar {
  readonly store: IdentityStore;
  readonly contexts: TlsContexts;
  readonly renewer: Renewer;
  readonly admin: AdminServer;
  readonly audit: AuditLog;
  readonly source: CertificateSource;
  readonly trust: TrustStore;
  /** Present when the source serves a trust bundle and CRLs (Vault). */
  readonly trustRefresher: TrustRefresher | undefined;
  #listeners: Listener[] = [];
  #state: 'new' | 'starting' | 'running' | 'leaving' | 'draining' | 'stopped' = 'new';

  private constructor(
    readonly config: Config,
    readonly metrics: Metrics,
    parts: SourceParts,
    private readonly logger: Logger,
    options: SidecarOptions,
    peerTrust: PeerTrust,
  ) {
    this.source = parts.source;
    const identity = createIdentity({
      config,
      parts,
      logger,
      trustRequired: peerTrust.anchors === 'listed',
      recordRenewal: (result) => this.metrics.certRenewals.inc({ result }),
    });
    this.store = identity.store;
    this.trust = identity.trust;
    this.trustRefresher = identity.trustRefresher;
    this.renewer = identity.renewer;
    this.contexts = new TlsContexts(this.store, this.trust, config.tls, peerTrust);
    const source = this.source;
    metrics.watchIdentity(
      {
        certificateNotAfter: () => this.store.current()?.info.notAfter,
        nextRenewal: () => this.renewer.nextRenewal,
        vaultTokenExpiresAt: () => parts.session?.tokenExpiresAt,
        crlFetchedAt: () => this.trust.crl?.fetchedAt,
      },
      {
        source: source.kind,
        auth: parts.session ? config.vault?.auth.method : undefined,
        mount: config.vault && config.vault.pki.crl !== 'off' && source.fetchTrust ? config.vault.pki.mount : undefined,
      },
    );
    this.audit = new AuditLog(options.auditLogger ?? logger.child({ module: 'audit' }));
    this.admin = new AdminServer(
      config.admin.listen,
      {
        notReadyReasons: () => this.notReadyReasons(),
        certificate: () => {
          const current = this.store.current();
          return current && { ...current.info, certificate: current.bundle.certPem };
        },
        nextRenewal: () => this.renewer.nextRenewal,
        metrics: async () => ({ contentType: this.metrics.contentType, text: await this.metrics.text() }),
        rotate: () => this.#state === 'running' && this.renewNow(),
      },
      config.admin.rotateMinInterval,
    );
  }

  static async create(config: Config, logger: Logger, options: SidecarOptions = {}): Promise<Sidecar> {
    const metrics = new Metrics();
    const parts = options.source
      ? { source: options.source, startupHint: `check the ${options.source.kind} certificate source` }
      : await createSource(config, logger, metrics);
    return new Sidecar(config, metrics, parts, logger, options, await peerTrustFor(config, parts.source));
  }

  /** Renews the certificate now (SIGHUP, the admin /rotate): false once stopping, or when a renewal is already in flight. */
  renewNow(): boolean {
    return (this.#state === 'starting' || this.#state === 'running') && this.renewer.renewNow();
  }

  /** Why /readyz says no; empty when ready. */
  notReadyReasons(now: Date = new Date()): string[] {
    if (this.#state === 'leaving') return ['shutting down: listeners accept until shutdownDelay ends, then drain'];
    if (this.#state === 'draining' || this.#state === 'stopped') return [this.#state];
    const reasons: string[] = [];
    const current = this.store.current()?.info;
    const minValidityMs = this.config.admin.readyMinValidity * 1000;
    if (!current || !this.store.hasValidCertificate(now)) reasons.push('no valid certificate');
    else if (current.notAfter.getTime() - now.getTime() < minValidityMs) {
      reasons.push(`certificate expires within ${this.config.admin.readyMinValidity}s and has not been renewed`);
    }
    reasons.push(...(this.trustRefresher?.notReadyReasons() ?? []));
    if (this.trustRefresher?.crlExpired(now)) reasons.push('the CRL expired and could not be refreshed (vault.pki.crl: closed)');
    if (this.#state !== 'running') reasons.push('listeners not bound');
    for (const listener of this.#listeners) {
      if (!listener.address()) reasons.push(`listener ${listener.name} not bound`);
    }
    return reasons;
  }

  /** Resolves once a certificate is published and every listener is bound; rejects on any start-up failure. */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new Error('Sidecar.start() called twice');
    this.#state = 'starting';
    const admin = await this.admin.listen();
    this.logger.info({ address: formatHostPort({ host: admin.address, port: admin.port }) }, 'admin server ready');
    this.renewer.start();
    if (this.source.watch) {
      this.source.watch(() => {
        this.logger.info('identity files changed; reloading');
        // A reload already in flight may have read the files before this change: go again after it.
        if (!this.renewer.renewNow()) setTimeout(() => this.renewer.renewNow(), 1000).unref();
        void this.trustRefresher?.refreshNow();
      });
    }
    if (!(await this.#waitForFirstCertificate())) return;
    // Trust bundle and CRLs before the first handshake, so revocation holds from the start.
    await this.trustRefresher?.start();
    const refresher = this.trustRefresher;
    const deps: ListenerDeps = {
      contexts: this.contexts,
      revocations: crlsOf(this.trust),
      // Each relayed body chunk is a fresh buffer: a young-generation collection every few MiB.
      bodyRelayed: (bytes) => youngGarbage.relayed(bytes),
      logger: this.logger,
      metrics: this.metrics,
      audit: this.audit,
      // A peer from an issuer we do not know yet (a rotation we have not seen — or a stranger):
      // check the issuer list early, within the bounds TrustRefresher.hint() keeps.
      ...(refresher ? { onUnknownIssuer: () => refresher.hint() } : {}),
    };
    this.#listeners = await createListeners(this.config, deps);
    for (const listener of this.#listeners) await listener.listen();
    this.#state = 'running';
    this.logger.info({ listeners: this.#listeners.length }, 'sidecar ready');
  }

  /**
   * Waits for the first certificate. Each `startupTimeout` without one logs a one-line error that
   * says what to check, and the wait goes on, not ready: exiting would only trade the renewer's
   * backoff for a crash loop. False when the sidecar was stopped first.
   */
  async #waitForFirstCertificate(): Promise<boolean> {
    for (;;) {
      try {
        await this.renewer.waitForFirstCertificate(this.config.startupTimeout * 1000);
        return this.#state === 'starting';
      } catch (err) {
        if (this.#state !== 'starting') return false;
        if (!isSidecarError(err) || err.code !== ErrorCodes.STARTUP_TIMEOUT) throw err;
        this.logger.error({ code: err.code }, `${err.message}; still trying, not ready`);
      }
    }
  }

  /** Bound address of a listener by name (port 0 in tests resolves here). */
  listenerAddress(name: string): AddressInfo {
    const address = this.#listeners.find((l) => l.name === name)?.address();
    if (!address) throw new Error(`listener ${name} is not bound`);
    return address;
  }

  /**
   * Graceful stop: readiness turns false first; the listeners keep accepting for `delayMs` (while
   * Kubernetes takes the pod out of Service endpoints and peers stop sending it new connections),
   * then stop accepting, and in-flight requests get up to `graceMs`; then renewal and Vault stop,
   * and the admin server last.
   */
  async stop(graceMs: number = this.config.drainTimeout * 1000, delayMs: number = this.config.shutdownDelay * 1000): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'draining' || this.#state === 'leaving') return;
    if (delayMs > 0 && this.#state === 'running') {
      this.#state = 'leaving';
      this.logger.info({ delayMs }, 'shutting down: still accepting until shutdownDelay ends');
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
    this.#state = 'draining';
    this.logger.info({ graceMs }, 'draining');
    await Promise.all(this.#listeners.map((l) => l.drain(graceMs)));
    await this.renewer.stop();
    await this.trustRefresher?.stop();
    const problems = await this.source.close();
    for (const problem of problems) this.logger.warn({ code: ErrorCodes.SHUTDOWN_REVOKE_FAILED }, problem);
    this.audit.close();
    this.#state = 'stopped';
    await this.admin.close();
    this.logger.info('stopped');
  }
}
