/**
 * Inbound mTLS in h2 mode (gRPC and any HTTP/2): TLS with ALPN `h2` and a required client
 * certificate, the same authorization and caller headers as http mode, and streams relayed to the
 * app over cleartext HTTP/2 (prior knowledge) on one multiplexed session.
 */
import http2 from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { formatHostPort } from '../config/parse.js';
import type { InboundListenerConfig } from '../config/schema.js';
import { ErrorCodes } from '../errors.js';
import { AuthorizationPolicy } from '../tls/authorization.js';
import { formatXfcc, peerIdentity } from '../tls/peer.js';
import { normalizedPath, refusal, reportRejectedHandshakes } from './admission.js';
import { H2Session, relayStream } from './h2-forward.js';
import { type Listener, type ListenerDeps, listenerHandle } from './listener.js';

const IDENTITY_HEADERS = ['x-forwarded-client-cert', 'client-cert', 'client-cert-chain'];

export function createInboundH2Listener(config: InboundListenerConfig, index: number, deps: ListenerDeps): Listener {
  const { contexts, metrics, audit } = deps;
  const log = deps.logger.child({ listener: config.name, direction: 'inbound', mode: 'h2' });
  const policy = config.authorization ? new AuthorizationPolicy(config.authorization) : undefined;
  const admission = { listener: config.name, policy, metrics, audit };
  const app = new H2Session(`http://${formatHostPort(config.target)}`, () => ({}));

  const server = http2.createSecureServer({
    ...contexts.serverOptions(),
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: ['h2'],
  });
  server.on('stream', (stream, headers) => {
    const socket = stream.session?.socket as TLSSocket | undefined;
    const peer = socket ? peerIdentity(socket) : undefined;
    const method = String(headers[':method'] ?? 'GET');
    const refused = refusal(admission, peer, socket?.remoteAddress, { method, path: normalizedPath(String(headers[':path'] ?? '/')) });
    if (refused) {
      stream.respond({ ':status': 403, 'content-type': 'application/json', 'x-sidecar-error': ErrorCodes.AUTHZ_DENIED });
      stream.end(JSON.stringify({ error: { code: ErrorCodes.AUTHZ_DENIED, message: refused } }));
      return;
    }
    for (const name of IDENTITY_HEADERS) delete headers[name];
    if (peer && config.forwardClientCert === 'xfcc') headers['x-forwarded-client-cert'] = formatXfcc(peer);
    if (config.rewriteHost) headers[':authority'] = config.rewriteHost;
    relayStream(stream, headers, app.get(), (err) => ({
      status: 502,
      code: ErrorCodes.APP_UNREACHABLE,
      message: `the app at ${formatHostPort(config.target)} did not answer over HTTP/2 (${err.code ?? err.message})`,
    }));
  });
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
    afterDrain: () => {
      app.close();
    },
  });
}
