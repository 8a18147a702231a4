/**
 * A connection ends with its peer's certificate. TLS checks the peer's certificate at the
 * handshake only: a kept-alive HTTP/1.1 connection, an h2 session, a WebSocket or a tcp pipe kept
 * flowing after the certificate expired or was revoked (issue 27, defect 4: 406,069 calls over
 * 51 s past notAfter in pods). Here each connection gets one timer at the earlier of its peer's
 * notAfter and `opened + limits.maxConnectionLifetime`, and every CRL change is checked against
 * the open connections' serials; the connection is then closed the way its protocol allows
 * (the caller's `close`: GOAWAY for h2, after the request in flight for HTTP/1.1, at once for tcp).
 *
 * Timers are unref'd and cleared at the connection's close (a soak opens 100k connections), and
 * wait in steps past setTimeout's 24.8-day limit (setLongTimeout), for certificates of years.
 */
import '../identity/x509-setup.js';
import type http from 'node:http';
import type http2 from 'node:http2';
import type { Server as NetServer } from 'node:net';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { X509Certificate as PeculiarCertificate } from '@peculiar/x509';
import type { CrlSource } from '../identity/trust.js';
import type { AuditLog } from '../telemetry/audit.js';
import type { Metrics } from '../telemetry/metrics.js';
import { type LongTimer, setLongTimeout } from '../timers.js';
import { connectionOf } from './connection.js';
import { closeSessionGracefully } from './h2/idle-connections.js';
import { normalizeSerial, revokedSerials } from './revoked-serials.js';

export type DeadlineReason = 'peer_certificate_expired' | 'peer_certificate_revoked' | 'max_lifetime';

/** Closes one connection gracefully for `reason` (its protocol's way). */
export type CloseConnection = (reason: DeadlineReason) => void;

export interface ConnectionDeadlinesOptions {
  readonly listener: string;
  /** limits.maxConnectionLifetime in ms; undefined or 0: no limit but the certificate's. */
  readonly maxLifetimeMs?: number | undefined;
  readonly crls?: CrlSource | undefined;
  readonly metrics: Pick<Metrics, 'connectionsClosed'>;
  readonly audit: Pick<AuditLog, 'record'>;
  readonly now?: () => number;
}

interface Watched {
  readonly socket: TLSSocket;
  readonly close: CloseConnection;
  readonly serial: string;
  readonly raw: Buffer;
  readonly peer: string | undefined;
  readonly notAfter: number;
  timer: LongTimer | undefined;
}

function peerName(cert: PeerCertificate): string | undefined {
  const uri = /URI:([^,]+)/.exec(cert.subjectaltname ?? '')?.[1];
  const cn = cert.subject?.CN;
  return uri ?? (Array.isArray(cn) ? cn[0] : cn);
}

/**
 * What is watched of a connection still open, or undefined: not for a socket already cut (by the
 * revocation check before the server's own handler), or the socket behind an h2 session that
 * was made on such a socket, which no longer answers getPeerCertificate.
 */
function watchedOf(socket: TLSSocket | undefined, close: CloseConnection): Watched | undefined {
  if (!socket || socket.destroyed || typeof socket.getPeerCertificate !== 'function') return undefined;
  let cert: PeerCertificate;
  try {
    cert = socket.getPeerCertificate();
  } catch {
    return undefined;
  }
  if (!cert?.raw) return undefined;
  return {
    socket,
    close,
    serial: normalizeSerial(cert.serialNumber ?? ''),
    raw: cert.raw,
    peer: peerName(cert),
    notAfter: Date.parse(cert.valid_to),
    timer: undefined,
  };
}

/** The connections of one listener, each watched until its peer's certificate ends. */
export class ConnectionDeadlines {
  readonly #open = new Set<Watched>();
  readonly #now: () => number;
  #revoked = new Map<string, Set<string>>();

  constructor(private readonly opts: ConnectionDeadlinesOptions) {
    this.#now = opts.now ?? Date.now;
    const crls = opts.crls;
    if (!crls) return;
    let loaded = crls.crlPems();
    this.#revoked = revokedSerials(loaded);
    crls.onChange(() => {
      // Also called at each rotation of our own certificate: parse only when the CRLs changed.
      const now = crls.crlPems();
      if (now.join('') === loaded.join('')) return;
      loaded = now;
      this.#revoked = revokedSerials(now);
      if (this.#revoked.size === 0) return;
      for (const watched of [...this.#open]) if (this.#isRevoked(watched)) this.#end(watched, 'peer_certificate_revoked');
    });
  }

  /** Connections being watched (for tests: back to 0 once they close). */
  get size(): number {
    return this.#open.size;
  }

  /**
   * Watches `socket`, whose handshake completed, until it closes: `close` is called once, at its
   * peer certificate's expiry, at maxConnectionLifetime, or when a CRL revokes the certificate.
   */
  watch(socket: TLSSocket, close: CloseConnection): void {
    const watched = watchedOf(socket, close);
    if (!watched) return;
    const { notAfter } = watched;
    const now = this.#now();
    const lifetime = this.opts.maxLifetimeMs ? now + this.opts.maxLifetimeMs : Infinity;
    // Past notAfter (inclusive, to the second): one second after it.
    const expiry = Number.isFinite(notAfter) ? notAfter + 1000 : Infinity;
    const due = Math.min(lifetime, expiry);
    if (Number.isFinite(due)) {
      // Not unref()'d: Node keeps the (empty) timer list of an unref'd timer it cleared until that
      // list's time comes, and each connection's delay is a duration of its own — 20,000 closed
      // connections left 20,000 lists for a day (+1.4 MB heap, found by the connection soak). The
      // open socket keeps the process up anyway; the timer is cleared when it closes.
      watched.timer = setLongTimeout(
        () => this.#end(watched, due === expiry ? 'peer_certificate_expired' : 'max_lifetime'),
        due - now,
        this.#now,
      );
    }
    this.#open.add(watched);
    socket.once('close', () => {
      watched.timer?.clear();
      this.#open.delete(watched);
    });
    // Node binds a connection's secure context when it accepts the TCP connection: a handshake a
    // peer held back until after a CRL refresh completed on the context without that CRL. The
    // CRLs loaded now decide — and the connection is cut, not closed gracefully: nothing it
    // sent may reach the app (an h2 GOAWAY would still let the streams sent with the handshake in).
    if (this.#isRevoked(watched)) this.#end(watched, 'peer_certificate_revoked', true);
  }

  /**
   * For a listener's 'secureConnection', before anything else reads the socket (an h2 server's
   * session dispatches the streams that came with the handshake as it is made): cuts a connection
   * whose certificate the CRLs loaded now revoke. Whether it did.
   */
  refuseIfRevoked(socket: TLSSocket): boolean {
    if (this.#revoked.size === 0) return false;
    const watched = watchedOf(socket, () => socket.destroy());
    if (!watched || !this.#isRevoked(watched)) return false;
    this.#open.add(watched);
    this.#end(watched, 'peer_certificate_revoked', true);
    return true;
  }

  #isRevoked(watched: Watched): boolean {
    const issuers = this.#revoked.get(watched.serial);
    if (!issuers) return false;
    // Serials are unique per issuer only: parse the certificate (rarely: its serial is listed).
    try {
      return issuers.has(new PeculiarCertificate(watched.raw).issuer);
    } catch {
      return false;
    }
  }

  /** `cut`: destroy the socket at once (a connection that must not deliver anything more). */
  #end(watched: Watched, reason: DeadlineReason, cut = false): void {
    if (!this.#open.delete(watched)) return;
    watched.timer?.clear();
    const { listener } = this.opts;
    this.opts.metrics.connectionsClosed.inc({ listener, reason });
    const detail =
      reason === 'max_lifetime'
        ? `open longer than limits.maxConnectionLifetime (${(this.opts.maxLifetimeMs ?? 0) / 1000}s)`
        : reason === 'peer_certificate_expired'
          ? `the peer certificate (serial ${watched.serial}) expired at ${new Date(watched.notAfter).toISOString()}`
          : `the peer certificate (serial ${watched.serial}) is revoked by a CRL loaded since the connection was accepted`;
    this.opts.audit.record(
      { event: 'connection_closed', listener, remoteAddress: watched.socket.remoteAddress, peer: watched.peer, reason, detail },
      reason === 'max_lifetime'
        ? 'closing a connection at limits.maxConnectionLifetime'
        : 'closing a connection whose peer certificate ended',
    );
    if (cut) watched.socket.destroy();
    else watched.close(reason);
  }
}

/** One listener's deadlines, from its limits and its TLS contexts. */
export function deadlinesFor(
  listener: string,
  limits: { readonly maxConnectionLifetime?: number | undefined },
  deps: { readonly revocations?: CrlSource | undefined } & Pick<ConnectionDeadlinesOptions, 'metrics' | 'audit'>,
): ConnectionDeadlines {
  return new ConnectionDeadlines({
    listener,
    maxLifetimeMs: limits.maxConnectionLifetime ? limits.maxConnectionLifetime * 1000 : undefined,
    crls: deps.revocations,
    metrics: deps.metrics,
    audit: deps.audit,
  });
}

/**
 * How long an HTTP/1.1 response in flight (or an outbound h2 stream) may still run once its
 * connection's peer certificate ended: a streamed or long-polled answer must not keep a revoked
 * peer connected for ever (inbound h2 streams get about 2 s, closeSessionGracefully's two grace
 * periods, as at an idle close).
 */
export const IN_FLIGHT_GRACE_MS = 10_000;

/**
 * An HTTP/1.1 connection, gracefully: the response in flight gets `Connection: close` (or, already
 * started, the connection ends after it; at most IN_FLIGHT_GRACE_MS later) and requests
 * pipelined behind it are ignored; an idle or upgraded (WebSocket) connection is closed at once.
 */
export function closeHttp1(socket: TLSSocket): void {
  // Node's server keeps the response being written on its socket as _httpMessage.
  const res = (socket as TLSSocket & { _httpMessage?: http.ServerResponse | null })._httpMessage;
  if (!res || res.writableEnded || socket.destroyed) {
    socket.destroy();
    return;
  }
  connectionOf(socket).closing = true;
  if (!res.headersSent) res.shouldKeepAlive = false;
  else res.once('finish', () => socket.destroySoon());
  res.once('close', () => socket.destroySoon());
  const cut = setTimeout(() => socket.destroy(), IN_FLIGHT_GRACE_MS).unref();
  socket.once('close', () => clearTimeout(cut));
}

/** Watches every connection of an inbound (TLS) server once its handshake completed. */
export function watchInboundConnections(server: NetServer, kind: 'http' | 'h2' | 'tcp', deadlines: ConnectionDeadlines): void {
  if (kind === 'h2') {
    // Before the server's own handler, which makes the session and dispatches the streams that came
    // with the handshake: revoked since the TCP connection was accepted, cut unread.
    server.prependListener('secureConnection', (socket: TLSSocket) => deadlines.refuseIfRevoked(socket));
    // GOAWAY with the last stream id, then closed once the streams in flight are done (as an idle close).
    server.on('session', (session: http2.ServerHttp2Session) => {
      // A session Node made on a socket the revocation check had already cut: nothing to watch.
      if (session.destroyed) return;
      deadlines.watch(session.socket as TLSSocket, () => closeSessionGracefully(session));
    });
    return;
  }
  // First, before the server reads the socket: watch() cuts a connection the CRLs loaded now revoke.
  server.prependListener('secureConnection', (socket: TLSSocket) =>
    deadlines.watch(socket, kind === 'http' ? () => closeHttp1(socket) : () => socket.destroy()),
  );
}
