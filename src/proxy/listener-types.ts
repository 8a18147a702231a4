/**
 * What the sidecar composes: every inbound and outbound listener has the shape `Listener`, and is
 * built from `ListenerDeps`. Kept apart from listener.ts so that the helpers a listener uses can
 * name these types without an import circle.
 */
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { AuditLog } from '../telemetry/audit.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { TlsContexts } from '../tls/contexts.js';

export interface Listener {
  readonly name: string;
  readonly direction: 'inbound' | 'outbound';
  listen(): Promise<AddressInfo>;
  /** Bound address once listening (port 0 in tests resolves here). */
  address(): AddressInfo | undefined;
  /** Stop accepting; finish in-flight requests for up to graceMs. */
  drain(graceMs: number): Promise<void>;
}

/** What every listener is built from: the current TLS material and the telemetry it reports to. */
export interface ListenerDeps {
  readonly contexts: TlsContexts;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly audit: AuditLog;
  /** A peer's certificate chained to no CA we trust: the trust bundle may be behind (a new issuer). */
  readonly onUnknownIssuer?: () => void;
}
