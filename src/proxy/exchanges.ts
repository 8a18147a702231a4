/**
 * What a listener records when an exchange ends — a request in http and h2 modes, a connection in
 * tcp mode: the request metrics (by direction and, opt-in, the peer's SPIFFE ID) and, opt-in, one
 * access log line.
 */
import type { Logger } from 'pino';
import type { Metrics } from '../telemetry/metrics.js';
import { nameOf, type PeerIdentity, spiffeId } from '../tls/peer.js';

/** Distinct peers a listener labels its request metrics with; later ones are counted as `other`. */
export const MAX_PEER_LABELS = 100;

export interface Exchange {
  readonly remoteAddress: string | undefined;
  /** Inbound: the client's verified certificate. Outbound: the name the upstream's certificate was verified against. */
  readonly peer: PeerIdentity | string | undefined;
  readonly startedAt: bigint;
  readonly bytesReceived: number;
  readonly bytesSent: number;
  /** Requests only (http and h2); tcp connections have none. */
  readonly request?: {
    readonly protocol: 'http/1.1' | 'h2';
    readonly method: string;
    readonly path: string;
    /** The status sent, or `aborted` when the exchange ended before a response started. */
    readonly status: number | 'aborted';
  };
}

export interface ExchangeRecorderOptions {
  readonly listener: string;
  readonly direction: 'inbound' | 'outbound';
  readonly metrics: Metrics;
  /** The listener's logger (it names the listener and direction). */
  readonly logger: Logger;
  readonly accessLog: boolean;
  /** Label request metrics with the peer's SPIFFE ID (inbound listeners that opt in). */
  readonly peerLabel: boolean;
}

export interface ExchangeRecorder {
  (exchange: Exchange): void;
  /**
   * Whether exchanges need their peer and bytes (access log or peer label on). Off by default, so
   * the per-request path skips that bookkeeping and the exchange carries no peer and zero bytes.
   */
  readonly detailed: boolean;
}

/** A peer as the access log names it; outbound, the upstream's expected name. */
export function peerName(peer: PeerIdentity | string | undefined): string | undefined {
  return peer === undefined || typeof peer === 'string' ? peer : nameOf(peer);
}

export function exchangeRecorder(opts: ExchangeRecorderOptions): ExchangeRecorder {
  const { listener, direction, metrics } = opts;
  // The access log is asked for per listener, so it is written whatever log.level says.
  const access = opts.accessLog ? opts.logger.child({ event: 'access' }, { level: 'info' }) : undefined;
  const peerLabel = opts.peerLabel ? boundedLabel(MAX_PEER_LABELS) : undefined;
  // Label children bound once per label set: resolving labels on every request is measurable on the hot path.
  const counters = new Map<string, { inc(): void }>();
  const histograms = new Map<string, { observe(value: number): void }>();

  const record = (exchange: Exchange) => {
    const seconds = Number(process.hrtime.bigint() - exchange.startedAt) / 1e9;
    const { request } = exchange;
    if (request) {
      const peer = peerLabel?.(typeof exchange.peer === 'object' ? (spiffeId(exchange.peer) ?? 'none') : 'none');
      const status = String(request.status);
      const key = peer === undefined ? status : `${status} ${peer}`;
      let counter = counters.get(key);
      if (!counter) {
        counter = metrics.requests.labels(peer === undefined ? { listener, direction, status } : { listener, direction, status, peer });
        counters.set(key, counter);
      }
      counter.inc();
      let histogram = histograms.get(peer ?? '');
      if (!histogram) {
        histogram = metrics.requestDuration.labels(peer === undefined ? { listener, direction } : { listener, direction, peer });
        histograms.set(peer ?? '', histogram);
      }
      histogram.observe(seconds);
    }
    access?.info(
      {
        remoteAddress: exchange.remoteAddress,
        peer: peerName(exchange.peer),
        ...request,
        bytesReceived: exchange.bytesReceived,
        bytesSent: exchange.bytesSent,
        durationMs: Math.round(seconds * 1e4) / 10,
      },
      request ? 'request' : 'connection',
    );
  };
  return Object.assign(record, { detailed: opts.accessLog || opts.peerLabel });
}

/** Passes the first `max` distinct values through and maps every later one to `other`, so a label's series stay bounded. */
function boundedLabel(max: number): (value: string) => string {
  const seen = new Set<string>();
  return (value) => {
    if (seen.has(value)) return value;
    if (seen.size >= max) return 'other';
    seen.add(value);
    return value;
  };
}
