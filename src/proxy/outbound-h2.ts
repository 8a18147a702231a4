/**
 * Outbound in h2 mode: the app speaks cleartext HTTP/2 (prior knowledge, as gRPC clients do to
 * a local proxy); its streams are multiplexed over one mTLS HTTP/2 session to the target, which is
 * replaced after a rotation so new streams present the new certificate.
 */
import http2 from 'node:http2';
import { isIP } from 'node:net';
import tls from 'node:tls';
import { formatHostPort } from '../config/parse.js';
import type { OutboundListenerConfig } from '../config/schema.js';
import { ErrorCodes } from '../errors.js';
import { H2Session, relayStream } from './h2-forward.js';
import { type Listener, type ListenerDeps, listenerHandle } from './listener.js';

export function createOutboundH2Listener(config: OutboundListenerConfig, index: number, deps: ListenerDeps): Listener {
  const { contexts, metrics } = deps;
  const log = deps.logger.child({ listener: config.name, direction: 'outbound', mode: 'h2' });
  const targetText = formatHostPort(config.target);
  const expectedName = config.serverName ?? config.target.host;
  const upstream = new H2Session(`https://${targetText}`, () => ({
    secureContext: contexts.clientContext(),
    servername: isIP(expectedName) ? undefined : expectedName,
    checkServerIdentity: (_host: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(expectedName, cert),
    ALPNProtocols: ['h2'],
  }));
  contexts.onChange(() => upstream.renew());

  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    headers[':authority'] = expectedName;
    headers[':scheme'] = 'https';
    relayStream(stream, headers, upstream.get(), (err) => ({
      status: 502,
      code: ErrorCodes.UPSTREAM_HANDSHAKE_FAILED,
      message: `HTTP/2 over mTLS to ${targetText} failed (${err.code ?? err.message}); the server must present a certificate for "${expectedName}" from the trusted CA`,
    }));
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
    afterDrain: () => {
      upstream.close();
    },
  });
}
