/**
 * Inbound mTLS in tcp mode: terminate TLS (client certificate required), apply the listener's
 * authorization to the peer, then pipe bytes to the app. A denied peer's connection is closed
 * right after the handshake.
 */
import net from 'node:net';
import tls from 'node:tls';
import { formatHostPort } from '../config/parse.js';
import type { InboundListenerConfig } from '../config/schema.js';
import { AuthorizationPolicy } from '../tls/authorization.js';
import { peerIdentity } from '../tls/peer.js';
import { refusal, reportRejectedHandshakes } from './admission.js';
import { type Listener, type ListenerDeps, listenerHandle } from './listener.js';
import { pipeBothWays } from './pipe.js';

export function createInboundTcpListener(config: InboundListenerConfig, index: number, deps: ListenerDeps): Listener {
  const { contexts, metrics, audit } = deps;
  const log = deps.logger.child({ listener: config.name, direction: 'inbound', mode: 'tcp' });
  const policy = config.authorization ? new AuthorizationPolicy(config.authorization) : undefined;
  const admission = { listener: config.name, policy, metrics, audit };

  const server = tls.createServer(
    { ...contexts.serverOptions(), requestCert: true, rejectUnauthorized: true, allowHalfOpen: true },
    (socket) => {
      if (refusal(admission, peerIdentity(socket), socket.remoteAddress)) {
        socket.destroy();
        return;
      }
      const app = net.connect({ host: config.target.host, port: config.target.port, allowHalfOpen: true });
      app.on('error', (err) =>
        log.warn({ event: 'app_unreachable', reason: (err as NodeJS.ErrnoException).code ?? err.message }, 'app connection failed'),
      );
      pipeBothWays(socket, app);
    },
  );
  contexts.onChange(() => server.setSecureContext(contexts.serverOptions()));
  reportRejectedHandshakes(server, config.name, metrics, audit);

  return listenerHandle({
    config,
    index,
    kind: 'raw',
    direction: 'inbound',
    server,
    metrics,
    logger: log,
    details: { target: formatHostPort(config.target) },
  });
}
