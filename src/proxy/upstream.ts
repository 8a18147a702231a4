/**
 * The remote end of an outbound listener, shared by every mode: how to dial it with mTLS (the
 * current certificate, SNI, the server checked against its expected name), and how to report a
 * failure — unreachable, or a handshake the server failed, which is counted and audited.
 */
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import tls from 'node:tls';
import { formatHostPort } from '../config/parse.js';
import type { OutboundListenerConfig } from '../config/schema/index.js';
import { type ErrorCode, ErrorCodes, UNREACHABLE_CODES } from '../errors.js';
import { handshakeFailureReason } from '../telemetry/metrics.js';
import type { ErrorAnswer } from './json-error.js';
import type { ListenerDeps } from './listener-types.js';

const NETWORK_ERRORS = UNREACHABLE_CODES;
/** The connection was closed or reset under us (undici's code for a close; EOF: an h2 session's end). */
const CLOSED_ERRORS = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE', 'EOF']);
/** HTTP/2: the stream or session was refused or reset after the connection was up. */
const RESET_ERRORS = new Set([
  'ERR_HTTP2_STREAM_ERROR',
  'ERR_HTTP2_SESSION_ERROR',
  'ERR_HTTP2_GOAWAY_SESSION',
  'ERR_HTTP2_STREAM_CANCEL',
  'ERR_HTTP2_INVALID_SESSION',
]);
/** The upstream answered something no HTTP client may be given (h2: a :status outside 200–599). */
const PROTOCOL_ERRORS = new Set(['ERR_HTTP2_STATUS_INVALID', 'ERR_HTTP2_INVALID_RESPONSE']);
/** The upstream connected but then went silent past limits.idleTimeout (undici's codes). */
const SILENCE_ERRORS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** Failures that are the network's or the upstream's state, each with its log event and answer. */
const NOT_HANDSHAKE_FAILURES: readonly {
  codes: ReadonlySet<string>;
  event: string;
  log: string;
  code: ErrorCode;
  message: (target: string, detail: string) => string;
}[] = [
  {
    codes: SILENCE_ERRORS,
    event: 'upstream_timeout',
    log: 'upstream stopped answering',
    code: ErrorCodes.UPSTREAM_UNREACHABLE,
    message: (target, detail) => `${target} stopped answering (${detail}); limits.idleTimeout bounds the wait`,
  },
  {
    codes: NETWORK_ERRORS,
    event: 'upstream_unreachable',
    log: 'upstream unreachable',
    code: ErrorCodes.UPSTREAM_UNREACHABLE,
    message: (target, detail) => `cannot reach ${target} (${detail})`,
  },
  {
    codes: PROTOCOL_ERRORS,
    event: 'upstream_protocol_error',
    log: 'upstream answered something that cannot be relayed',
    code: ErrorCodes.UPSTREAM_PROTOCOL_ERROR,
    message: (target, detail) =>
      `${target} answered with a response that cannot be relayed (${detail}: a :status outside 200–599 or headers HTTP/2 forbids); fix the server behind it`,
  },
  {
    codes: RESET_ERRORS,
    event: 'upstream_reset',
    log: 'upstream reset the request',
    code: ErrorCodes.UPSTREAM_RESET,
    message: (target, detail) => `${target} reset the request (${detail}); it may be overloaded or restarting`,
  },
];

/** A close or reset of a connection the server had accepted (see Upstream.failed). */
const CLOSED_AFTER_ACCEPT = {
  codes: CLOSED_ERRORS,
  event: 'upstream_reset',
  log: 'upstream closed the connection mid-request',
  code: ErrorCodes.UPSTREAM_RESET,
  message: (target: string, detail: string) =>
    `${target} closed the connection mid-request (${detail}) after accepting it; it may have crashed or be restarting`,
};

/** A failed dial or request, classified: the listener's mode adds the status (502, or 504). */
export type UpstreamFailure = Omit<ErrorAnswer, 'status'>;

export interface Upstream {
  readonly targetText: string;
  readonly expectedName: string;
  /** The SNI every dial sends: serverName (or the target host), none for an IP address. */
  readonly servername: string | undefined;
  /** TLS options for a dial, read at dial time so a rotation applies to the next one. */
  tlsOptions(): tls.ConnectionOptions;
  /** Dials the target with the current TLS options and `extra` (ALPN, a session to resume, onread). */
  dial(extra?: tls.ConnectionOptions): tls.TLSSocket;
  /**
   * Classifies a failed dial or request; handshake failures are counted and audited here.
   * `accepted`: the server is known to have accepted the connection (h2: its SETTINGS came), so
   * a close or reset is the peer going away mid-request, not a refused certificate.
   */
  failed(err: Error & { code?: string }, accepted?: boolean): UpstreamFailure;
}

export function upstreamFor(config: OutboundListenerConfig, deps: ListenerDeps): Upstream {
  const { contexts, metrics, audit } = deps;
  const targetText = formatHostPort(config.target);
  const expectedName = config.serverName ?? config.target.host;
  // SNI carries host names only, never IP addresses (RFC 6066 §3).
  const servername = isIP(expectedName) ? undefined : expectedName;
  const checkServerIdentity = (_host: string, cert: tls.PeerCertificate) => {
    // A CA certificate is never a server's own (OpenSSL would accept it as a leaf).
    if (cert.ca) return Object.assign(new Error(`${expectedName} presented a CA certificate as its own`), { code: 'ERR_TLS_CA_AS_LEAF' });
    // Nor is a leaf from an intermediate the server brought (see TlsContexts.peerIssuerProblem).
    const refusal = contexts.peerIssuerProblem(new X509Certificate(cert.raw));
    if (refusal) return Object.assign(new Error(`${expectedName}: ${refusal.detail}`), { code: 'ERR_TLS_UNTRUSTED_ISSUER' });
    return tls.checkServerIdentity(expectedName, cert);
  };
  const tlsOptions = (): tls.ConnectionOptions => ({
    secureContext: contexts.current().client,
    servername,
    checkServerIdentity,
    rejectUnauthorized: true,
  });
  const dial = deps.dial ?? tls.connect;
  return {
    targetText,
    expectedName,
    servername,
    tlsOptions,
    dial: (extra = {}) => dial({ ...tlsOptions(), host: config.target.host, port: config.target.port, ...extra }),
    failed(failure, accepted = false) {
      // An h2 stream cancelled because its session failed carries the session's error as its cause.
      const cause = failure.cause as (Error & { code?: string }) | undefined;
      const err = failure.code === 'ERR_HTTP2_STREAM_CANCEL' && cause instanceof Error ? cause : failure;
      // undici names its connect timeout (TCP connect plus TLS handshake) its own way.
      const code = err.code === 'UND_ERR_CONNECT_TIMEOUT' ? 'ETIMEDOUT' : err.code;
      const detail = code ?? err.message;
      // Silence, an unreachable target, or a stream reset on an established h2 session: not a
      // handshake failure, so a rate-limited warning and no handshake metric.
      // A peer that accepted the connection and then closed or reset it (a sidecar that crashed or
      // restarted mid-request) is a reset: it says nothing about trust.
      const kind = accepted && CLOSED_ERRORS.has(detail) ? CLOSED_AFTER_ACCEPT : NOT_HANDSHAKE_FAILURES.find((k) => k.codes.has(detail));
      if (kind) {
        audit.warn({ event: kind.event, listener: config.name, remoteAddress: targetText, reason: detail }, kind.log);
        return { code: kind.code, message: kind.message(targetText, detail) };
      }
      const reason = handshakeFailureReason({ code, message: err.message });
      metrics.handshakeFailures.inc({ listener: config.name, reason });
      if (reason === 'unknown_ca') deps.onUnknownIssuer?.();
      audit.record(
        { event: 'upstream_handshake_failed', listener: config.name, remoteAddress: targetText, peer: expectedName, reason, detail },
        'mTLS handshake with the upstream failed',
      );
      // A server that refuses our certificate after a TLS 1.3 handshake (the client's side done)
      // often just closes the connection, before accepting it: that, or a server going away then.
      const closedOnUs = CLOSED_ERRORS.has(detail);
      return {
        code: ErrorCodes.UPSTREAM_HANDSHAKE_FAILED,
        message: closedOnUs
          ? `${targetText} closed the mTLS connection before accepting it (${detail}); check that it trusts this sidecar's CA and allows its identity, or whether it was restarting`
          : `mTLS to ${targetText} failed (${detail}); the server must present a certificate for "${expectedName}" from the trusted CA`,
      };
    },
  };
}
