/**
 * What every inbound listener does with a peer, whatever its mode: require and verify a client
 * certificate with the current context, report rejected handshakes with their real reason, apply
 * the authorization rules with an audit event and a metric, and tell the app who called.
 */
import type tls from 'node:tls';
import type { TLSSocket, Server as TlsServer } from 'node:tls';
import type { InboundListenerConfig } from '../config/schema/index.js';
import { ErrorCodes } from '../errors.js';
import type { AuditLog } from '../telemetry/audit.js';
import { handshakeFailureReason, type Metrics } from '../telemetry/metrics.js';
import { AuthorizationPolicy, type RequestFacts } from '../tls/authorization.js';
import { keepServerCurrent, type TlsProvider } from '../tls/generation.js';
import { nameOf, type PeerIdentity, peerIdentity } from '../tls/peer.js';
import { type ConnectionGate, gateConnections, type PeerClass } from './connection-gate.js';
import { loggedPath } from './forwarded-path.js';
import type { ErrorAnswer } from './json-error.js';
import type { ListenerDeps } from './listener-types.js';
import { normalizeTarget } from './request-target.js';

export interface InboundMtls {
  readonly admission: AdmissionContext;
  /** Options for the TLS server: our certificate, client certificates required and verified, the handshake bounded. */
  readonly serverOptions: tls.TlsOptions;
  /**
   * Keeps the server on the current certificate (rotation), refuses CA certificates as client
   * leaves and leaves from untrusted issuers (prepended: before any other secureConnection
   * handler, the server's own included), applies the connection limits, and reports rejected
   * handshakes.
   */
  attach(server: TlsServer): void;
}

export function inboundMtls(config: InboundListenerConfig, deps: ListenerDeps): InboundMtls {
  const { contexts, metrics, audit } = deps;
  const policy = config.authorization ? new AuthorizationPolicy(config.authorization) : undefined;
  return {
    admission: { listener: config.name, policy, metrics, audit, config },
    serverOptions: {
      ...contexts.current().server,
      requestCert: true,
      rejectUnauthorized: true,
      handshakeTimeout: config.limits.handshakeTimeout * 1000,
    },
    attach(server) {
      // Rotation: new handshakes use the new certificate; established connections keep theirs.
      keepServerCurrent(server, contexts);
      refuseCaLeaves(server, config.name, metrics, audit);
      refuseUntrustedIssuers(server, config.name, contexts, metrics, audit);
      const gate = gateConnections(server, config.name, config.limits, metrics, audit, (socket) => classifyPeer(policy, socket));
      reportRejectedHandshakes(server, config.name, gate, metrics, audit, deps.onUnknownIssuer);
    },
  };
}

/**
 * For the connection gate: whether no rule admits the peer, for any request (rules with methods or
 * paths count as possible) — such a connection can only ever be refused; never in dry run, which
 * refuses nothing — and the identity its slots are counted under.
 */
function classifyPeer(policy: AuthorizationPolicy | undefined, socket: TLSSocket): PeerClass {
  const peer = peerIdentity(socket);
  if (!peer) return { denied: !!policy && !policy.config.dryRun, identity: '' };
  const denied = !!policy && !policy.config.dryRun && !policy.decide(peer).allowed;
  return { denied, identity: nameOf(peer) };
}

/**
 * OpenSSL accepts a CA certificate (basicConstraints CA:TRUE) as a client's own certificate; a
 * leaf is never a CA, and a CA key in a client's hands means a mis-issued credential.
 */
function refuseCaLeaves(server: TlsServer, listener: string, metrics: Metrics, audit: AuditLog): void {
  // Prepended, like every refusal of a connection (see refuseUntrustedIssuers): it runs before the
  // server's own handler (https, http2) reads the socket, whatever order the listeners were added in.
  server.prependListener('secureConnection', (socket: TLSSocket) => {
    if (!peerIdentity(socket)?.ca) return;
    const remoteAddress = socket.remoteAddress;
    socket.destroy();
    metrics.handshakeFailures.inc({ listener, reason: 'ca_as_leaf' });
    audit.record(
      {
        event: 'tls_handshake_rejected',
        listener,
        remoteAddress,
        reason: 'ca_as_leaf',
        detail: 'the client presented a CA certificate as its own',
      },
      'rejected a TLS handshake',
    );
  });
}

/**
 * OpenSSL also accepts a leaf signed by an intermediate the client sends, if that chains to a
 * trusted CA: one CA:TRUE certificate under it would mint any identity. The leaf's own issuer
 * must be trusted (TlsContexts.peerIssuerProblem).
 */
function refuseUntrustedIssuers(server: TlsServer, listener: string, contexts: TlsProvider, metrics: Metrics, audit: AuditLog): void {
  server.prependListener('secureConnection', (socket: TLSSocket) => {
    const leaf = socket.getPeerX509Certificate();
    const refusal = leaf ? contexts.peerIssuerProblem(leaf) : undefined;
    if (!refusal || socket.destroyed) return;
    const remoteAddress = socket.remoteAddress;
    socket.destroy();
    metrics.handshakeFailures.inc({ listener, reason: 'untrusted_issuer' });
    audit.record(
      { event: 'tls_handshake_rejected', listener, remoteAddress, reason: 'untrusted_issuer', detail: refusal.detail },
      'rejected a TLS handshake',
    );
  });
}

/** Errors of a peer that closed or reset the socket; with no bytes received, a connect-and-close (probe, scan). */
const CLOSED_CODES = new Set(['ECONNRESET', 'EPIPE']);

/** Counts and audits every handshake the listener refuses, with the real reason and the peer's address. */
function reportRejectedHandshakes(
  server: TlsServer,
  listener: string,
  gate: ConnectionGate,
  metrics: Metrics,
  audit: AuditLog,
  onUnknownIssuer?: () => void,
): void {
  server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
    // Node emits this for a handshake timeout without closing the socket (https servers close it
    // in their clientError default, plain TLS servers never do): a silent peer would stay forever.
    socket.destroy();
    // A certificate that fails verification (unknown CA, expired, revoked) reaches us as a bare
    // "socket hang up": Node verifies after OpenSSL's handshake and destroys the socket, leaving the
    // real reason on the socket's authorizationError.
    const authorizationError: unknown = socket.authorizationError;
    const code = typeof authorizationError === 'string' ? authorizationError : err.code;
    const closed = CLOSED_CODES.has(code ?? '') || (code === undefined && err.message === 'socket hang up');
    // A TCP connect-and-close (load-balancer health check, port scan) is not a refused handshake.
    if (closed && gate.bytesReceivedBy(socket) === 0) return;
    const reason = closed ? 'peer_closed' : handshakeFailureReason({ code, message: err.message });
    const remoteAddress = gate.remoteAddressOf(socket);
    metrics.handshakeFailures.inc({ listener, reason });
    if (reason === 'unknown_ca') onUnknownIssuer?.();
    if (reason === 'peer_refused_certificate') {
      audit.record(
        { event: 'tls_handshake_failed', listener, remoteAddress, reason, detail: code ?? err.message },
        "the client refused this sidecar's certificate; check that it trusts this sidecar's CA",
      );
      return;
    }
    audit.record(
      { event: 'tls_handshake_rejected', listener, remoteAddress, reason, detail: code ?? err.message },
      'rejected a TLS handshake',
    );
  });
}

export interface AdmissionContext {
  readonly listener: string;
  readonly config: InboundListenerConfig;
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
  const who = nameOf(peer);
  const dryRun = ctx.policy.config.dryRun;
  const what = request ? 'request' : 'connection';
  // The reason is a stable code and the method and path go in the detail: the audit log's
  // rate limit is per reason, and a reason naming the path would give each path its own budget.
  ctx.audit.record(
    {
      event: dryRun ? 'authz_would_deny' : 'authz_denied',
      listener: ctx.listener,
      remoteAddress,
      peer: who,
      reason: decision.denial,
      detail: decision.reason,
    },
    dryRun ? `authorization would deny this ${what} (dry run: let through)` : `authorization denied a ${what}`,
  );
  if (dryRun) return undefined;
  ctx.metrics.authzDenials.inc({ listener: ctx.listener });
  return request
    ? `${who} may not call ${request.method} ${request.path} on ${ctx.listener}: ${decision.reason}`
    : `${who}: ${decision.reason}`;
}

/** Why a request is not forwarded: 400 (malformed) or 403 (no rule admits it). */
export type RequestRefusal = ErrorAnswer<400 | 403>;

/**
 * An HTTP request (http, h2 or an upgrade) on `socket`: its headers sound (`headerProblem`, found
 * by the mode, refuses it), the target normalized once — what is authorized is what is forwarded —
 * then the allow rules. Returns the target to forward and the verified caller, or why not.
 */
export function admitRequest(
  ctx: AdmissionContext,
  socket: TLSSocket,
  method: string,
  rawTarget: string,
  headerProblem?: string,
): { target: string; peer: PeerIdentity } | { refused: RequestRefusal } {
  const remoteAddress = socket.remoteAddress;
  if (headerProblem) {
    ctx.metrics.badRequests.inc({ listener: ctx.listener, reason: 'request_headers' });
    ctx.audit.record(
      { event: 'request_header_refused', listener: ctx.listener, remoteAddress, reason: headerProblem },
      'refused a request whose headers are ambiguous',
    );
    return { refused: { status: 400, code: ErrorCodes.BAD_REQUEST, message: `${headerProblem}; the request was not forwarded` } };
  }
  const normalized = normalizeTarget(rawTarget, ctx.config.requestPath);
  if (!normalized.ok) {
    ctx.metrics.badRequests.inc({ listener: ctx.listener, reason: 'request_target' });
    ctx.audit.record(
      {
        event: 'request_target_refused',
        listener: ctx.listener,
        remoteAddress,
        reason: normalized.reason,
        // Never the query: tokens travel in URLs.
        detail: loggedPath(rawTarget).slice(0, 200),
      },
      'refused a request target that cannot be normalized safely',
    );
    return { refused: { status: 400, code: ErrorCodes.BAD_REQUEST, message: `${normalized.reason}; the request was not forwarded` } };
  }
  const peer = peerIdentity(socket);
  const refused = refusal(ctx, peer, remoteAddress, ctx.policy ? { method, path: normalized.path } : undefined);
  if (refused || !peer) {
    return { refused: { status: 403, code: ErrorCodes.AUTHZ_DENIED, message: refused ?? 'no verified client certificate' } };
  }
  return { target: normalized.target, peer };
}
