/**
 * What the sidecar composes: every inbound and outbound listener has the shape `Listener`, and is
 * built from `ListenerDeps`. Kept apart from listener.ts so that the helpers a listener uses can
 * name these types without an import circle.
 */
import type { AddressInfo } from 'node:net';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import type { CrlSource } from '../identity/trust.js';
import type { AuditLog } from '../telemetry/audit.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { TlsProvider } from '../tls/generation.js';

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
  /** The TLS generation at accept and dial time. */
  readonly contexts: TlsProvider;
  /** The CRLs in force, to close open connections a new CRL revokes (the trust store's); none: no revocation. */
  readonly revocations?: CrlSource | undefined;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly audit: AuditLog;
  /** A peer's certificate chained to no CA we trust: the trust bundle may be behind (a new issuer). */
  readonly onUnknownIssuer?: () => void;
  /**
   * Opens an outbound mTLS connection (tcp and h2 modes; http mode's undici pool dials with its own
   * connector, which caches sessions per pool). tls.connect by default; a test passes one that
   * fails or never answers.
   */
  readonly dial?: TlsDial | undefined;
  /**
   * Told of each body chunk relayed, either way, in http and h2 modes: each is a fresh buffer, and
   * the sidecar runs a young-generation collection after every few MiB of them
   * (memory/young-garbage.ts). None: nothing is told (tests, tools).
   */
  readonly bodyRelayed?: ((bytes: number) => void) | undefined;
}

/** Does nothing: what a listener is told of relayed bodies when nobody listens. */
export const IGNORE_BODY: (bytes: number) => void = () => undefined;

/** Opens a TLS connection with these options (host, port, secure context, servername…), as tls.connect does. */
export type TlsDial = (options: tls.ConnectionOptions) => tls.TLSSocket;
