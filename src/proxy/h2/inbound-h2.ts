/**
 * Inbound mTLS in h2 mode (gRPC and any HTTP/2): TLS with ALPN `h2` and a required client
 * certificate, the same target normalization, authorization and caller headers as http mode, and
 * streams relayed to the app over cleartext HTTP/2 (prior knowledge) on one multiplexed session.
 */
import http2 from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { formatHostPort } from '../../config/parse.js';
import type { InboundListenerConfig } from '../../config/schema/index.js';
import { ErrorCodes } from '../../errors.js';
import { admitRequest, inboundMtls } from '../admission.js';
import { callerHeaders, isCallerHeader } from '../caller-headers.js';
import { connectionOf } from '../connection.js';
import { type Listener, type ListenerDeps, listenerHandle } from '../listener.js';
import { h2HostProblem } from '../request-host.js';
import { answerStream, forwardHeaders } from './h2-answers.js';
import { relayStream } from './h2-relay.js';
import { guardH2Server, h2ServerOptions } from './h2-server-guards.js';
import { H2Session, rootCause } from './h2-session.js';
import { StreamLedger } from './stream-ledger.js';

const dropFromRequest = (name: string) => name === 'host' || isCallerHeader(name);

/** What went wrong with the app, in words that point at it. */
function appFailureMessage(target: string, detail: string): string {
  if (detail === 'ECONNREFUSED')
    return `the app refused the connection to ${target} (ECONNREFUSED); check that it listens there over HTTP/2`;
  if (detail === 'EOF' || detail === 'ECONNRESET' || detail === 'EPIPE')
    return `the app at ${target} closed the connection before answering (${detail}); it may have crashed or be restarting`;
  if (detail === 'ERR_HTTP2_STATUS_INVALID' || detail === 'ERR_HTTP2_INVALID_RESPONSE')
    return `the app at ${target} answered with a response that cannot be relayed (${detail}: a :status outside 200–599 or headers HTTP/2 forbids)`;
  return `the app at ${target} did not answer over HTTP/2 (${detail})`;
}

export function createInboundH2Listener(config: InboundListenerConfig, index: number, deps: ListenerDeps): Listener {
  const log = deps.logger.child({ listener: config.name, direction: 'inbound', mode: 'h2' });
  // What the access log records of each stream, as only the relay knows it.
  const streams = config.accessLog ? new StreamLedger() : undefined;
  const targetText = formatHostPort(config.target);
  const mtls = inboundMtls(config, deps);
  const app = new H2Session(`http://${targetText}`, () => ({}), { connectTimeoutMs: config.limits.connectTimeout * 1000 });

  const server = http2.createSecureServer({
    ...mtls.serverOptions,
    ...h2ServerOptions(config.limits.maxConcurrentStreams),
    ALPNProtocols: ['h2'],
  });
  guardH2Server(server, config, ErrorCodes.APP_UNREACHABLE, deps);
  server.on('stream', (stream, headers) => {
    // The session (and its socket) may already be gone when a stream event is delivered.
    const socket = stream.session?.socket as TLSSocket | undefined;
    if (!socket || stream.destroyed) return;
    // Busy until the stream closes: the gate sheds idle connections only.
    connectionOf(socket).requestInFlight(stream);
    const method = String(headers[':method'] ?? '');
    const decision = admitRequest(mtls.admission, socket, method, String(headers[':path'] ?? ''), h2HostProblem(headers));
    if ('refused' in decision) {
      answerStream(stream, decision.refused.status, decision.refused.code, decision.refused.message);
      // A denied peer's session ends after the answer (GOAWAY, then closed once its open streams
      // are done), so it does not keep holding a slot of limits.maxConnections.
      if (decision.refused.status === 403) stream.session?.close();
      return;
    }
    // The app gets one authority, as :authority: a client's host header (equal to it, or standing
    // in for it) is not forwarded beside it.
    const clientAuthority = headers[':authority'] ?? headers.host;
    const authority = config.rewriteHost ?? clientAuthority;
    const caller = callerHeaders(config, decision.peer, socket, clientAuthority, headers['x-forwarded-for']);
    const outgoing = forwardHeaders(headers, dropFromRequest, caller);
    outgoing[':path'] = decision.target;
    streams?.forwardedWith(stream, decision.target);
    if (authority !== undefined) outgoing[':authority'] = authority;
    relayStream(
      stream,
      outgoing,
      () => app.get(),
      (failure) => {
        // The stream of a session that never connected is cancelled with the connect's error as
        // its cause: that error (ECONNREFUSED) is the one to name, not ERR_HTTP2_STREAM_CANCEL.
        const err = rootCause(failure);
        const detail = err.code ?? err.message;
        deps.audit.warn(
          { event: 'app_unreachable', listener: config.name, remoteAddress: targetText, reason: detail },
          'app request failed',
        );
        return { status: 502, code: ErrorCodes.APP_UNREACHABLE, message: appFailureMessage(targetText, detail) };
      },
      { bytes: streams?.entry(stream), bodyRelayed: deps.bodyRelayed },
    );
  });
  mtls.attach(server);

  return listenerHandle({
    config,
    index,
    kind: 'h2',
    direction: 'inbound',
    server,
    deps,
    logger: log,
    streams,
    afterDrain: () => app.close(),
  });
}
