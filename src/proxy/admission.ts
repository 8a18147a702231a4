/**
 * What every inbound listener does with a peer, whatever its mode: require and verify a client
 * certificate with the current context, report rejected handshakes with their real reason, apply
 * the authorization rules with an audit event and a metric, and tell the app who called.
 */
import type tls from 'node:tls';
import type { TLSSocket, Server as TlsServer } from 'node:tls';
import type { InboundListenerConfig } from '../config/schema.js';
import type { AuditLog } from '../telemetry/audit.js';
import { handshakeFailureReason, type Metrics } from '../telemetry/metrics.js';
import { AuthorizationPolicy, type RequestFacts } from '../tls/authorization.js';
import { formatXfcc, type PeerIdentity, rfc9440Headers } from '../tls/peer.js';
import type { ListenerDeps } from './listener.js';

/** Headers that carry caller identity; a client must never be able to set them itself. */
export const IDENTITY_HEADERS = ['x-forwarded-client-cert', 'client-cert', 'client-cert-chain'] as const;

export interface InboundMtls {
  readonly admission: AdmissionContext;
  /** Options for the TLS server: our certificate, client certificates required and verified. */
  readonly serverOptions: tls.TlsOptions;
  /** Keeps the server on the current certificate (rotation) and reports its rejected handshakes. */
  attach(server: TlsServer): void;
}

export function inboundMtls(config: InboundListenerConfig, deps: ListenerDeps): InboundMtls {
  const { contexts, metrics, audit } = deps;
  const policy = config.authorization ? new AuthorizationPolicy(config.authorization) : undefined;
  return {
    admission: { listener: config.name, policy, metrics, audit },
    serverOptions: { ...contexts.serverOptions(), requestCert: true, rejectUnauthorized: true },
    attach(server) {
      // Rotation: new handshakes use the new certificate; established connections keep theirs.
      contexts.onChange(() => server.setSecureContext(contexts.serverOptions()));
      reportRejectedHandshakes(server, config.name, metrics, audit);
    },
  };
}

/** The headers that tell the app who called, in the form the listener was configured for. */
export function callerHeaders(config: InboundListenerConfig, peer: PeerIdentity, socket: TLSSocket): Record<string, string> {
  if (config.forwardClientCert === 'xfcc') return { 'x-forwarded-client-cert': formatXfcc(peer) };
  if (config.forwardClientCert === 'rfc9440') return rfc9440Headers(socket) ?? {};
  return {};
}

/** Counts and audits every handshake the listener refuses. */
export function reportRejectedHandshakes(server: TlsServer, listener: string, metrics: Metrics, audit: AuditLog): void {
  server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
    // A certificate that fails verification (unknown CA, expired, revoked) reaches us as a bare
    // "socket hang up": Node verifies after OpenSSL's handshake and destroys the socket, leaving the
    // real reason on the socket's authorizationError.
    const authorizationError: unknown = socket.authorizationError;
    const code = typeof authorizationError === 'string' ? authorizationError : err.code;
    const reason = handshakeFailureReason({ code, message: err.message });
    metrics.handshakeFailures.inc({ listener, reason });
    audit.record(
      { event: 'tls_handshake_rejected', listener, remoteAddress: socket.remoteAddress, reason, detail: code ?? err.message },
      'rejected a TLS handshake',
    );
  });
}

export interface AdmissionContext {
  readonly listener: string;
  readonly policy: AuthorizationPolicy | undefined;
  readonly metrics: Metrics;
  readonly audit: AuditLog;
}

/**
 * Decides whether `peer` (and the request, in http and h2 modes) may pass. Returns the refusal
 * message for the caller to send, or undefined to forward. Dry-run denials are logged and let through.
 */
export function refusal(
  ctx: AdmissionContext,
  peer: PeerIdentity | undefined,
  remoteAddress: string | undefined,
  request?: RequestFacts,
): string | undefined {
  if (!peer) return 'no verified client certificate on this connection';
  if (!ctx.policy) return undefined;
  const decision = ctx.policy.decide(peer, request);
  if (decision.allowed) return undefined;
  const who = peer.uris[0] ?? peer.dnsNames[0] ?? peer.subject;
  const dryRun = ctx.policy.config.dryRun;
  const what = request ? 'request' : 'connection';
  ctx.audit.record(
    { event: dryRun ? 'authz_would_deny' : 'authz_denied', listener: ctx.listener, remoteAddress, peer: who, reason: decision.reason },
    dryRun ? `authorization would deny this ${what} (dry run: let through)` : `authorization denied a ${what}`,
  );
  if (dryRun) return undefined;
  ctx.metrics.authzDenials.inc({ listener: ctx.listener });
  return request
    ? `${who} may not call ${request.method} ${request.path} on ${ctx.listener}: ${decision.reason}`
    : `${who}: ${decision.reason}`;
}

/** The request path as the app will see it, dot segments resolved ("/api/../admin" is "/admin"). */
export function normalizedPath(url: string | undefined): string {
  return new URL(url ?? '/', 'http://authz.invalid').pathname;
}
