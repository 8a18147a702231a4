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
import { peerIdentity } from '../tls/peer.js';
import { callerHeaders, IDENTITY_HEADERS, inboundMtls, normalizedPath, refusal } from './admission.js';
import { H2Session, relayStream } from './h2-forward.js';
import { jsonErrorBody } from './json-error.js';
import { type Listener, type ListenerDeps, listenerHandle } from './listener.js';

export function createInboundH2Listener(config: InboundListenerConfig, index: number, deps: ListenerDeps): Listener {
  const log = deps.logger.child({ listener: config.name, direction: 'inbound', mode: 'h2' });
  const targetText = formatHostPort(config.target);
  const mtls = inboundMtls(config, deps);
  const app = new H2Session(`http://${targetText}`, () => ({}));

  const server = http2.createSecureServer({ ...mtls.serverOptions, ALPNProtocols: ['h2'] });
  server.on('stream', (stream, headers) => {
    for (const name of IDENTITY_HEADERS) delete headers[name];
    const socket = stream.session?.socket as TLSSocket;
    const peer = peerIdentity(socket);
    const request = { method: String(headers[':method'] ?? 'GET'), path: normalizedPath(String(headers[':path'] ?? '/')) };
    const refused = refusal(mtls.admission, peer, socket.remoteAddress, request);
    if (refused || !peer) {
      stream.respond({ ':status': 403, 'content-type': 'application/json', 'x-sidecar-error': ErrorCodes.AUTHZ_DENIED });
      stream.end(jsonErrorBody(ErrorCodes.AUTHZ_DENIED, refused ?? 'no verified client certificate'));
      return;
    }
    Object.assign(headers, callerHeaders(config, peer, socket));
    if (config.rewriteHost) headers[':authority'] = config.rewriteHost;
    relayStream(stream, headers, app.get(), (err) => ({
      status: 502,
      code: ErrorCodes.APP_UNREACHABLE,
      message: `the app at ${targetText} did not answer over HTTP/2 (${err.code ?? err.message})`,
    }));
  });
  mtls.attach(server);

  return listenerHandle({
    config,
    index,
    kind: 'raw',
    direction: 'inbound',
    server,
    metrics: deps.metrics,
    logger: log,
    details: { target: targetText },
    afterDrain: () => app.close(),
  });
}
