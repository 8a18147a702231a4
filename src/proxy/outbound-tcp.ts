/**
 * Outbound in tcp mode: the app connects in plaintext; each connection is dialled to the target
 * with mTLS (the current certificate, the server checked against the expected name) and piped.
 */
import net, { isIP } from 'node:net';
import tls from 'node:tls';
import { formatHostPort } from '../config/parse.js';
import type { OutboundListenerConfig } from '../config/schema.js';
import { handshakeFailureReason } from '../telemetry/metrics.js';
import { type Listener, type ListenerDeps, listenerHandle } from './listener.js';
import { pipeBothWays } from './pipe.js';

const NETWORK_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ECONNRESET']);

export function createOutboundTcpListener(config: OutboundListenerConfig, index: number, deps: ListenerDeps): Listener {
  const { contexts, metrics, audit } = deps;
  const log = deps.logger.child({ listener: config.name, direction: 'outbound', mode: 'tcp' });
  const targetText = formatHostPort(config.target);
  const expectedName = config.serverName ?? config.target.host;

  // TLS session resumption: a new app connection costs an abbreviated handshake, not a full one.
  // A resumed session carries the identity of the certificate it was made with, so a rotation
  // forgets it and the next dial presents the new certificate in full.
  let session: Buffer | undefined;
  contexts.onChange(() => {
    session = undefined;
  });

  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    let secured = false;
    const upstream = tls.connect({
      session,
      host: config.target.host,
      port: config.target.port,
      secureContext: contexts.clientContext(),
      // SNI carries host names only, never IP addresses (RFC 6066 §3).
      servername: isIP(expectedName) ? undefined : expectedName,
      checkServerIdentity: (_host, cert) => tls.checkServerIdentity(expectedName, cert),
      // Passed through to the socket; the ConnectionOptions type does not list it.
      allowHalfOpen: true,
    } as tls.ConnectionOptions);
    // Bounded dial: TCP connect plus the TLS handshake.
    upstream.setTimeout(config.limits.connectTimeout * 1000, () =>
      upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })),
    );
    upstream.on('session', (ticket: Buffer) => {
      session = ticket;
    });
    upstream.once('secureConnect', () => {
      secured = true;
      upstream.setTimeout(config.limits.idleTimeout * 1000, () => upstream.destroy());
    });
    upstream.once('error', (err: Error & { code?: string }) => {
      if (!secured && !NETWORK_ERRORS.has(err.code ?? '')) {
        const reason = handshakeFailureReason(err);
        metrics.handshakeFailures.inc({ listener: config.name, reason });
        audit.record(
          {
            event: 'upstream_handshake_failed',
            listener: config.name,
            remoteAddress: targetText,
            peer: expectedName,
            reason,
            detail: err.code ?? err.message,
          },
          'mTLS handshake with the upstream failed',
        );
      }
      log.warn({ event: 'upstream_failed', target: targetText, reason: err.code ?? err.message }, 'upstream connection failed');
    });
    pipeBothWays(client, upstream);
  });

  return listenerHandle({
    config,
    index,
    kind: 'raw',
    direction: 'outbound',
    server,
    metrics,
    logger: log,
    details: { target: targetText, expectedName },
  });
}
