/**
 * What every inbound listener does with a peer, whatever its mode: report rejected handshakes with
 * their real reason, and apply the authorization rules with an audit event and a metric.
 */
import type { TLSSocket, Server as TlsServer } from 'node:tls';
import type { AuditLog } from '../telemetry/audit.js';
import { handshakeFailureReason, type Metrics } from '../telemetry/metrics.js';
import type { AuthorizationPolicy, RequestFacts } from '../tls/authorization.js';
import type { PeerIdentity } from '../tls/peer.js';

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
