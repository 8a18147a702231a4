/**
 * Outbound in tcp mode: the app connects in plaintext; each connection is dialled to the target
 * with mTLS (the current certificate, the server checked against the expected name) and piped.
 */
import net from 'node:net';
import type tls from 'node:tls';
import type { OutboundListenerConfig } from '../../config/schema/index.js';
import { deadlinesFor } from '../certificate-deadline.js';
import { type Listener, type ListenerDeps, listenerHandle } from '../listener.js';
import { upstreamFor } from '../upstream.js';
import { pipeDialled } from './pipe.js';

export function createOutboundTcpListener(config: OutboundListenerConfig, index: number, deps: ListenerDeps): Listener {
  const log = deps.logger.child({ listener: config.name, direction: 'outbound', mode: 'tcp' });
  const upstream = upstreamFor(config, deps);
  const deadlines = deadlinesFor(config.name, config.limits, deps);

  // TLS session resumption: a new app connection costs an abbreviated handshake, not a full one.
  // A resumed session carries the identity of the certificate it was made with, so it is only
  // offered within its TLS generation: after a rotation the next dial presents the new certificate.
  let saved: { readonly generation: number; readonly ticket: Buffer } | undefined;

  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    let secured = false;
    const generation = deps.contexts.current().id;
    let remote: tls.TLSSocket;
    try {
      remote = pipeDialled(client, (onread) =>
        upstream.dial({
          session: saved?.generation === generation ? saved.ticket : undefined,
          onread,
          // Passed through to the socket; the ConnectionOptions type does not list it.
          allowHalfOpen: true,
        } as tls.ConnectionOptions),
      );
    } catch (err) {
      // tls.connect throws for options it cannot use: the app's connection fails, not the process.
      upstream.failed(err as Error & { code?: string });
      client.destroy();
      return;
    }
    // Bounded dial: TCP connect plus the TLS handshake; then the idle limit.
    remote.setTimeout(config.limits.connectTimeout * 1000, () =>
      remote.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })),
    );
    remote.on('session', (ticket: Buffer) => {
      saved = { generation, ticket };
    });
    remote.once('secureConnect', () => {
      secured = true;
      remote.disableRenegotiation();
      // The upstream's certificate expired or was revoked (or maxConnectionLifetime): the pipe ends.
      deadlines.watch(remote, () => remote.destroy());
      remote.setTimeout(config.limits.idleTimeout * 1000, () => remote.destroy());
    });
    remote.once('error', (err: Error & { code?: string }) => {
      // Only a dial that never got through is the upstream's failure; later errors are the stream's.
      if (!secured) upstream.failed(err);
      else
        deps.audit.warn(
          { event: 'upstream_failed', listener: config.name, remoteAddress: upstream.targetText, reason: err.code ?? err.message },
          'upstream connection failed',
        );
    });
  });

  return listenerHandle({
    config,
    index,
    kind: 'tcp',
    upstream,
    direction: 'outbound',
    server,
    deps,
    logger: log,
  });
}
