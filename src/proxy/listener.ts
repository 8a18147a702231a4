/** What the sidecar composes: every inbound and outbound listener has this shape. */
import type http from 'node:http';
import type http2 from 'node:http2';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { formatHostPort, type HostPort } from '../config/parse.js';
import { peerIdentity } from '../tls/peer.js';
import { deadlinesFor, watchInboundConnections } from './certificate-deadline.js';
import { answerClientErrors } from './client-errors.js';
import { exchangeRecorder } from './exchanges.js';
import type { StreamLedger } from './h2/stream-ledger.js';
import { applyHttpLimits, applyRawLimits, type ListenerLimits } from './limits.js';
import type { Listener, ListenerDeps } from './listener-types.js';
import { drainRawServer, drainServer, listenOn, trackSockets } from './server-lifecycle.js';
import { type PeerOf, trackConnections, trackRequests, trackStreams, trackTcpConnections } from './server-metrics.js';
import type { Upstream } from './upstream.js';

// The two shapes every mode and its helpers share live in listener-types.ts, so that a helper
// (client errors, upstream, admission) can name them without importing the listener back.
export type { Listener, ListenerDeps } from './listener-types.js';

export interface ListenerHandleOptions {
  /** The listener's config entry and its index, for its name, address, limits and error messages. */
  readonly config: {
    readonly name: string;
    readonly listen: HostPort;
    readonly target: HostPort;
    readonly limits: ListenerLimits;
    readonly accessLog: boolean;
    readonly metrics?: { readonly peerLabel: boolean };
  };
  readonly index: number;
  readonly direction: 'inbound' | 'outbound';
  /**
   * http: an HTTP/1.1 server (Node's header timeout, graceful keep-alive drain); h2: an HTTP/2
   * server; tcp: a byte pipe (a TLS server inbound, whose connections are handed over once secure).
   */
  readonly kind: 'http' | 'h2' | 'tcp';
  readonly server: NetServer;
  /**
   * Outbound listeners: the upstream, whose expected name is the peer of every exchange (inbound
   * listeners name the client's verified certificate).
   */
  readonly upstream?: Pick<Upstream, 'expectedName'>;
  /** Metrics and audit log the listener reports to. */
  readonly deps: Pick<ListenerDeps, 'metrics' | 'audit'> & Partial<Pick<ListenerDeps, 'contexts'>>;
  readonly logger: Logger;
  /** Runs after the drain: release upstream pools and sessions. */
  readonly afterDrain?: () => void;
  /** h2 with the access log on: what the relay recorded of each stream (bytes, the path as forwarded). */
  readonly streams?: StreamLedger | undefined;
}

/**
 * The Listener every mode returns. Applies the limits and connection metrics to the server, binds
 * it (with a clear error), reports it, and drains it gracefully.
 */
export function listenerHandle(opts: ListenerHandleOptions): Listener {
  const { server, direction } = opts;
  const { metrics, audit } = opts.deps;
  const { name, limits } = opts.config;
  const field = `${direction}[${opts.index}].listen`;
  trackConnections(server, name, direction, metrics);
  // Outbound listeners watch their upstream connections in their mode's dialler.
  if (direction === 'inbound') watchInboundConnections(server, opts.kind, deadlinesFor(name, limits, opts.deps));
  const expectedName = opts.upstream?.expectedName;
  const peerOf: PeerOf = expectedName === undefined ? (socket) => peerIdentity(socket as TLSSocket) : () => expectedName;
  const record = exchangeRecorder({
    listener: name,
    direction,
    metrics,
    logger: opts.logger,
    accessLog: opts.config.accessLog,
    peerLabel: opts.config.metrics?.peerLabel ?? false,
  });
  // Inbound (TLS) listeners cap connections that completed a handshake, in connection-gate.ts;
  // outbound ones are plaintext on loopback and use Node's cap, counting what it drops.
  const capConnections = direction === 'outbound';
  if (capConnections) {
    server.on('drop', (dropped?: { remoteAddress?: string }) => {
      metrics.connectionsShed.inc({ listener: name, reason: 'max_connections' });
      audit.record(
        { event: 'connection_over_limit', listener: name, remoteAddress: dropped?.remoteAddress, reason: 'max_connections' },
        'closed a connection over the listener limit',
      );
    });
  }
  let sockets: Set<Socket> | undefined;
  if (opts.kind === 'http') {
    applyHttpLimits(server as http.Server, limits, capConnections, (reason, socket) => {
      if (reason !== 'body_idle') return;
      metrics.badRequests.inc({ listener: name, reason: 'body_timeout' });
      audit.warn(
        {
          event: 'bad_request',
          listener: name,
          remoteAddress: socket.remoteAddress,
          reason: 'body_timeout',
          detail: `no body bytes for limits.bodyIdleTimeout (${limits.bodyIdleTimeout}s)`,
        },
        'closed a connection whose request body stalled',
      );
    });
    answerClientErrors(server as http.Server, name, { metrics, audit }, (status, socket) =>
      record({
        remoteAddress: socket.remoteAddress,
        peer: undefined,
        startedAt: process.hrtime.bigint(),
        bytesReceived: 0,
        bytesSent: 0,
        request: { protocol: 'http/1.1', method: '', path: '', status },
      }),
    );
    trackRequests(server as http.Server, record, peerOf);
  } else {
    applyRawLimits(server, limits, capConnections, opts.kind === 'tcp');
    sockets = trackSockets(server);
    if (opts.kind === 'h2') trackStreams(server as http2.Http2Server, record, peerOf, opts.streams);
    else trackTcpConnections(server, direction === 'inbound' ? 'secureConnection' : 'connection', record, peerOf);
  }
  let bound: AddressInfo | undefined;
  return {
    name,
    direction,
    async listen() {
      bound = await listenOn(server, opts.config.listen, field);
      opts.logger.info(
        {
          address: formatHostPort({ host: bound.address, port: bound.port }),
          target: formatHostPort(opts.config.target),
          ...(expectedName === undefined ? {} : { expectedName }),
        },
        `${direction} listener ready`,
      );
      return bound;
    },
    address: () => bound,
    async drain(graceMs) {
      if (sockets) await drainRawServer(server, sockets, graceMs);
      else await drainServer(server as http.Server, graceMs);
      opts.afterDrain?.();
    },
  };
}
