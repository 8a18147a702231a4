/**
 * Outbound in h2 mode: the app speaks cleartext HTTP/2 (prior knowledge, as gRPC clients do to
 * a local proxy); its streams are multiplexed over one mTLS HTTP/2 session to the target per TLS
 * generation, so after a rotation new streams present the new certificate.
 */
import http2 from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { OutboundListenerConfig } from '../../config/schema/index.js';
import { ErrorCodes } from '../../errors.js';
import { deadlinesFor, IN_FLIGHT_GRACE_MS } from '../certificate-deadline.js';
import { type Listener, type ListenerDeps, listenerHandle } from '../listener.js';
import { upstreamFor } from '../upstream.js';
import { forwardHeaders } from './h2-answers.js';
import { relayStream } from './h2-relay.js';
import { guardH2Server, h2ServerOptions } from './h2-server-guards.js';
import { H2Session } from './h2-session.js';
import { StreamLedger } from './stream-ledger.js';

export function createOutboundH2Listener(config: OutboundListenerConfig, index: number, deps: ListenerDeps): Listener {
  const log = deps.logger.child({ listener: config.name, direction: 'outbound', mode: 'h2' });
  // What the access log records of each stream, as only the relay knows it.
  const streams = config.accessLog ? new StreamLedger() : undefined;
  const upstream = upstreamFor(config, deps);
  // One session per TLS generation: after a rotation the next stream opens a session that presents the new certificate.
  const session = new H2Session(
    `https://${upstream.targetText}`,
    () => ({ ...upstream.tlsOptions(), createConnection: () => upstream.dial({ ALPNProtocols: ['h2'] }) }),
    {
      generation: () => deps.contexts.current().id,
      connectTimeoutMs: config.limits.connectTimeout * 1000,
      idleTimeoutMs: config.limits.idleTimeout * 1000,
    },
  );
  // A session whose server certificate ends is closed (GOAWAY; its streams get IN_FLIGHT_GRACE_MS to finish); the next call opens a new one.
  const deadlines = deadlinesFor(config.name, config.limits, deps);
  const watched = new WeakSet<http2.ClientHttp2Session>();
  const current = () => {
    const s = session.get();
    if (!watched.has(s)) {
      watched.add(s);
      s.once('connect', () =>
        deadlines.watch(s.socket as TLSSocket, () => {
          s.close();
          const cut = setTimeout(() => s.destroy(), IN_FLIGHT_GRACE_MS).unref();
          s.once('close', () => clearTimeout(cut));
        }),
      );
    }
    return s;
  };

  const server = http2.createServer(h2ServerOptions(config.limits.maxConcurrentStreams));
  guardH2Server(server, config, ErrorCodes.UPSTREAM_UNREACHABLE, deps);
  server.on('stream', (stream, headers) => {
    if (stream.destroyed) return;
    const outgoing = forwardHeaders(headers);
    outgoing[':authority'] = upstream.expectedName;
    outgoing[':scheme'] = 'https';
    relayStream(stream, outgoing, current, (err, accepted) => ({ status: 502, ...upstream.failed(err, accepted) }), {
      bytes: streams?.entry(stream),
      bodyRelayed: deps.bodyRelayed,
    });
  });

  return listenerHandle({
    config,
    index,
    kind: 'h2',
    upstream,
    direction: 'outbound',
    server,
    deps,
    logger: log,
    streams,
    afterDrain: () => session.close(),
  });
}
