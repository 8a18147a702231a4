/**
 * Inbound mTLS in tcp mode: terminate TLS (client certificate required), apply the listener's
 * authorization to the peer, then pipe bytes to the app. A denied peer's connection is closed
 * right after the handshake.
 */
import net, { type AddressInfo } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import { formatHostPort } from '../config/parse.js';
import type { InboundListenerConfig } from '../config/schema.js';
import { handshakeFailureReason } from '../telemetry/metrics.js';
import { AuthorizationPolicy } from '../tls/authorization.js';
import { peerIdentity } from '../tls/peer.js';
import { applyRawLimits } from './limits.js';
import type { Listener, ListenerDeps } from './listener.js';
import { pipeBothWays } from './pipe.js';
import { drainRawServer, listenOn, trackSockets } from './server-lifecycle.js';
import { trackConnections } from './server-metrics.js';

export function createInboundTcpListener(config: InboundListenerConfig, index: number, deps: ListenerDeps): Listener {
  const { contexts, metrics, audit } = deps;
  const log = deps.logger.child({ listener: config.name, direction: 'inbound', mode: 'tcp' });
  const policy = config.authorization ? new AuthorizationPolicy(config.authorization) : undefined;

  const server = tls.createServer(
    { ...contexts.serverOptions(), requestCert: true, rejectUnauthorized: true, allowHalfOpen: true },
    (socket) => {
      const peer = peerIdentity(socket);
      const decision = peer && policy ? policy.decide(peer) : { allowed: peer !== undefined, reason: 'no client certificate' };
      if (!decision.allowed) {
        const who = peer ? (peer.uris[0] ?? peer.dnsNames[0] ?? peer.subject) : undefined;
        const dryRun = policy?.config.dryRun === true;
        audit.record(
          {
            event: dryRun ? 'authz_would_deny' : 'authz_denied',
            listener: config.name,
            remoteAddress: socket.remoteAddress,
            peer: who,
            reason: decision.reason,
          },
          dryRun ? 'authorization would deny this connection (dry run: let through)' : 'authorization denied a connection',
        );
        if (!dryRun) {
          metrics.authzDenials.inc({ listener: config.name });
          socket.destroy();
          return;
        }
      }
      const app = net.connect({ host: config.target.host, port: config.target.port, allowHalfOpen: true });
      app.on('error', (err) =>
        log.warn({ event: 'app_unreachable', reason: (err as NodeJS.ErrnoException).code ?? err.message }, 'app connection failed'),
      );
      pipeBothWays(socket, app);
    },
  );
  contexts.onChange(() => server.setSecureContext(contexts.serverOptions()));
  applyRawLimits(server, config.limits);
  trackConnections(server, config.name, metrics);
  const sockets = trackSockets(server);
  server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
    const authorizationError: unknown = socket.authorizationError;
    const code = typeof authorizationError === 'string' ? authorizationError : err.code;
    const reason = handshakeFailureReason({ code, message: err.message });
    metrics.handshakeFailures.inc({ listener: config.name, reason });
    audit.record(
      { event: 'tls_handshake_rejected', listener: config.name, remoteAddress: socket.remoteAddress, reason, detail: code ?? err.message },
      'rejected a TLS handshake',
    );
  });

  let bound: AddressInfo | undefined;
  return {
    name: config.name,
    direction: 'inbound',
    async listen() {
      bound = await listenOn(server, config.listen, `inbound[${index}].listen`);
      log.info(
        { address: formatHostPort({ host: bound.address, port: bound.port }), target: formatHostPort(config.target) },
        'inbound listener ready',
      );
      return bound;
    },
    address: () => bound,
    drain: (graceMs) => drainRawServer(server, sockets, graceMs),
  };
}
