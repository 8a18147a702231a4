/**
 * Admission of TLS connections on an inbound listener, with two separate bounds. Node's own
 * `server.maxConnections` counts a socket from its first byte, so a thousand sockets that never
 * finish a handshake (held for Node's 120 s default) locked every real client out. Here:
 *
 * - connections still in their handshake are capped by `maxPendingHandshakes`; when a new one
 *   arrives at the cap, the oldest pending one that has sent nothing is closed (else the oldest of
 *   all), so a flood of silent sockets only ever competes with itself, however fast it reconnects;
 * - only connections that completed a handshake count toward `maxConnections`. Past it, as Envoy's
 *   overload manager sheds the worst connections first: a peer that no authorization rule admits
 *   is closed first (the oldest such one, or the newcomer if it is one) — any certificate from a
 *   shared CA completes a handshake, and peers that may never send a request that passes must not
 *   hold the slots of ones that may; else the oldest idle connection (no request in flight) of the
 *   identity holding the most slots, if it holds at least two more than the newcomer's identity
 *   (so no identity is taken below one, and two identities never take a slot back and forth): a
 *   peer admitted by any narrow rule (GET /health for every workload) could otherwise hold every
 *   slot by sending an allowed request now and then. Otherwise the new connection is closed and
 *   the ones already open are untouched;
 * - `handshakeTimeout` (set on the server at construction) closes a socket that stays silent.
 *
 * Every shed connection is counted (`sidecar_connections_shed_total`) and audited.
 */
import type http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket, Server as TlsServer } from 'node:tls';
import type { AuditLog } from '../telemetry/audit.js';
import type { Metrics } from '../telemetry/metrics.js';
import { connectionOf, rawSocketOf } from './connection.js';
import { closeSessionGracefully } from './h2/idle-connections.js';

export interface GateLimits {
  readonly maxConnections: number;
  readonly maxPendingHandshakes: number;
}

/** What the gate needs to know of an established connection's peer. */
export interface PeerClass {
  /** No authorization rule admits it (closed first at the cap). */
  readonly denied: boolean;
  /** Its identity (SPIFFE ID, URI, DNS name or subject): slots are shared fairly between identities. */
  readonly identity: string;
}
export type ClassifyPeer = (socket: TLSSocket) => PeerClass;

export interface ConnectionGate {
  /** The peer's address, also for a socket whose handshake failed (Node forgets it once the socket is destroyed). */
  remoteAddressOf(socket: TLSSocket): string | undefined;
  /** How many bytes the peer sent before the handshake ended (0: a connect-and-close, e.g. a health check or a port scan). */
  bytesReceivedBy(socket: TLSSocket): number;
}

/**
 * The oldest pending socket that has sent nothing yet. A real client sends its ClientHello at once,
 * so evicting silent sockets first keeps a flood of them from evicting clients mid-handshake.
 */
function oldestSilent(pending: Set<Socket>): Socket | undefined {
  for (const socket of pending) if (socket.bytesRead === 0) return socket;
  return undefined;
}

export function gateConnections(
  server: TlsServer,
  listener: string,
  limits: GateLimits,
  metrics: Metrics,
  audit: AuditLog,
  // Without one (the webhook), every peer is one identity, admitted.
  classify: ClassifyPeer = () => ({ denied: false, identity: '' }),
): ConnectionGate {
  // A Set iterates in insertion order: its first element is the oldest pending handshake.
  const pending = new Set<Socket>();
  // Connections that completed a handshake; a Set, so a connection closed here to make room stops
  // counting at once and its later 'close' changes nothing.
  const established = new Set<TLSSocket>();
  // Those whose peer no rule admits, oldest first.
  const denied = new Set<TLSSocket>();
  // Established connections per peer identity, oldest first.
  const byIdentity = new Map<string, Set<TLSSocket>>();
  // An h2 server's session, on its connection (a session's socket is a proxy of the TLS socket).
  server.on('session', (session: http2.ServerHttp2Session) => {
    if (session.socket) connectionOf(session.socket).h2Session = session;
  });

  const forget = (socket: TLSSocket) => {
    established.delete(socket);
    denied.delete(socket);
    const identity = connectionOf(socket).gateIdentity;
    const own = identity === undefined ? undefined : byIdentity.get(identity);
    own?.delete(socket);
    if (identity !== undefined && own?.size === 0) byIdentity.delete(identity);
  };

  /**
   * The oldest idle connection of the identity holding the most slots, when that identity holds
   * at least two more than `newcomer` does (after the move it still holds at least as many).
   * Identities are tried from the largest down, skipping those with every connection busy.
   */
  const overShare = (newcomer: string): TLSSocket | undefined => {
    const floor = (byIdentity.get(newcomer)?.size ?? 0) + 2;
    const holders = [...byIdentity.entries()].filter(([, sockets]) => sockets.size >= floor).sort((a, b) => b[1].size - a[1].size);
    for (const [identity, sockets] of holders) {
      if (identity === newcomer) continue;
      for (const socket of sockets) if (!connectionOf(socket).busy) return socket;
    }
    return undefined;
  };

  const evict = (socket: TLSSocket, reason: 'denied_peer' | 'identity_share', detail: string, message: string) => {
    forget(socket);
    const remoteAddress = socket.remoteAddress;
    // An h2 connection gets GOAWAY with its last stream id first, so its client stops sending
    // calls on it instead of losing the one it sends as the socket is cut (issue 29, defect 2).
    const { h2Session, gateIdentity } = connectionOf(socket);
    if (h2Session) closeSessionGracefully(h2Session);
    else socket.destroy();
    metrics.connectionsShed.inc({ listener, reason });
    audit.record({ event: 'connection_evicted', listener, remoteAddress, peer: gateIdentity, reason, detail }, message);
  };

  server.on('connection', (raw: Socket) => {
    connectionOf(raw).remoteAddress = raw.remoteAddress;
    if (pending.size >= limits.maxPendingHandshakes) {
      const oldest = oldestSilent(pending) ?? (pending.values().next().value as Socket);
      pending.delete(oldest);
      oldest.destroy();
      metrics.connectionsShed.inc({ listener, reason: 'pending_handshakes' });
      audit.record(
        {
          event: 'handshake_evicted',
          listener,
          remoteAddress: connectionOf(oldest).remoteAddress,
          reason: 'pending_handshakes',
          detail: `${limits.maxPendingHandshakes} handshakes were pending (limits.maxPendingHandshakes); the oldest was closed`,
        },
        'closed the oldest unfinished TLS handshake to make room',
      );
    }
    pending.add(raw);
    raw.once('close', () => pending.delete(raw));
  });

  server.on('secureConnection', (socket: TLSSocket) => {
    const connection = connectionOf(socket);
    pending.delete(connection.socket);
    if (socket.destroyed) return;
    // A client asking to renegotiate gets an error and is closed (the context refuses it too).
    socket.disableRenegotiation();
    const peer = classify(socket);
    if (established.size >= limits.maxConnections) {
      const deniedVictim = peer.denied ? undefined : (denied.values().next().value as TLSSocket | undefined);
      const shareVictim = peer.denied || deniedVictim ? undefined : overShare(peer.identity);
      if (deniedVictim) {
        // Room for a peer that may pass: the oldest one that never can is closed.
        evict(
          deniedVictim,
          'denied_peer',
          `${limits.maxConnections} connections are open (limits.maxConnections); no allow rule admits this peer`,
          'closed a connection of a peer no rule admits to make room',
        );
      } else if (shareVictim) {
        evict(
          shareVictim,
          'identity_share',
          `${limits.maxConnections} connections are open (limits.maxConnections); this identity held the most, and this one was idle`,
          'closed an idle connection of the identity holding the most connections to make room',
        );
      } else {
        socket.destroy();
        metrics.connectionsShed.inc({ listener, reason: 'max_connections' });
        audit.record(
          {
            event: 'connection_over_limit',
            listener,
            remoteAddress: connection.remoteAddress,
            reason: 'max_connections',
            detail: `${limits.maxConnections} connections are open (limits.maxConnections)`,
          },
          'closed a connection over the listener limit',
        );
        return;
      }
    }
    established.add(socket);
    if (peer.denied) denied.add(socket);
    connection.gateIdentity = peer.identity;
    let own = byIdentity.get(peer.identity);
    if (!own) {
      own = new Set();
      byIdentity.set(peer.identity, own);
    }
    own.add(socket);
    socket.once('close', () => forget(socket));
  });

  return {
    remoteAddressOf(socket) {
      return socket.remoteAddress ?? connectionOf(socket).remoteAddress;
    },
    bytesReceivedBy(socket) {
      return rawSocketOf(socket).bytesRead;
    },
  };
}
