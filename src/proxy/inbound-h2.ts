/**
 * Inbound mTLS in h2 mode (gRPC and any HTTP/2): TLS with ALPN `h2` and a required client
 * certificate, the same authorization and caller headers as http mode, and streams relayed to the
 * app over cleartext HTTP/2 (prior knowledge) on one multiplexed session.
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { formatHostPort } from '../config/parse.js';
import type { InboundListenerConfig } from '../config/schema.js';
import { ErrorCodes } from '../errors.js';
import { handshakeFailureReason } from '../telemetry/metrics.js';
import { AuthorizationPolicy } from '../tls/authorization.js';
import { formatXfcc, peerIdentity } from '../tls/peer.js';
import { H2Session, relayStream } from './h2-forward.js';
import { applyRawLimits } from './limits.js';
import type { Listener, ListenerDeps } from './listener.js';
import { drainRawServer, listenOn, trackSockets } from './server-lifecycle.js';
import { trackConnections } from './server-metrics.js';

const IDENTITY_HEADERS = ['x-forwarded-client-cert', 'client-cert', 'client-cert-chain'];

export function createInboundH2Listener(config: InboundListenerConfig, index: number, deps: ListenerDeps): Listener {
  const { contexts, metrics, audit } = deps;
  const log = deps.logger.child({ listener: config.name, direction: 'inbound', mode: 'h2' });
  const policy = config.authorization ? new AuthorizationPolicy(config.authorization) : undefined;
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
    const path = new URL(String(headers[':path'] ?? '/'), 'http://authz.invalid').pathname;
    const decision =
      peer && policy ? policy.decide(peer, { method, path }) : { allowed: peer !== undefined, reason: 'no client certificate' };
    if (!decision.allowed && !policy?.config.dryRun) {
      metrics.authzDenials.inc({ listener: config.name });
      const who = peer ? (peer.uris[0] ?? peer.dnsNames[0] ?? peer.subject) : 'unknown peer';
      audit.record(
        { event: 'authz_denied', listener: config.name, remoteAddress: socket?.remoteAddress, peer: who, reason: decision.reason },
        'authorization denied a request',
      );
      const body = JSON.stringify({
        error: { code: ErrorCodes.AUTHZ_DENIED, message: `${who} may not call ${method} ${path} on ${config.name}: ${decision.reason}` },
      });
      stream.respond({ ':status': 403, 'content-type': 'application/json', 'x-sidecar-error': ErrorCodes.AUTHZ_DENIED });
      stream.end(body);
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
    async drain(graceMs) {
      await drainRawServer(server, sockets, graceMs);
      app.close();
    },
  };
}
