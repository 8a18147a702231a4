/**
 * Inbound mTLS in tcp mode: terminate TLS (client certificate required), apply the listener's
 * authorization to the peer, then pipe bytes to the app. A denied peer's connection is closed
 * right after the handshake.
 */
import tls from 'node:tls';
import { formatHostPort } from '../../config/parse.js';
import type { InboundListenerConfig } from '../../config/schema/index.js';
import { peerIdentity } from '../../tls/peer.js';
import { inboundMtls, refusal } from '../admission.js';
import { type Listener, type ListenerDeps, listenerHandle } from '../listener.js';
import { dialAndPipe } from './pipe.js';

export function createInboundTcpListener(config: InboundListenerConfig, index: number, deps: ListenerDeps): Listener {
  const log = deps.logger.child({ listener: config.name, direction: 'inbound', mode: 'tcp' });
  const mtls = inboundMtls(config, deps);

  const server = tls.createServer({ ...mtls.serverOptions, allowHalfOpen: true });
  // First, so limits and CA-leaf refusals close a socket before it is piped anywhere.
  mtls.attach(server);
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    if (socket.destroyed) return;
    if (refusal(mtls.admission, peerIdentity(socket), socket.remoteAddress)) {
      socket.destroy();
      return;
    }
    const app = dialAndPipe(socket, config.target);
    app.on('error', (err: NodeJS.ErrnoException) =>
      deps.audit.warn(
        { event: 'app_unreachable', listener: config.name, remoteAddress: formatHostPort(config.target), reason: err.code ?? err.message },
        'app connection failed',
      ),
    );
  });

  return listenerHandle({
    config,
    index,
    kind: 'tcp',
    direction: 'inbound',
    server,
    deps,
    logger: log,
  });
}
