/**
 * What the proxy keeps about one client connection, in one object: found from any socket that
 * stands for the connection — the TCP socket, the TLS socket over it (`_parent` is the TCP
 * socket, still so in Node 24), or an h2 session's proxy of the TLS socket — all of which reach
 * the same TCP socket, the key. Held in a WeakMap, so it goes with the socket; nothing here needs
 * clearing at close. (What belongs to a listener as a whole — the gate's sets of established and
 * denied connections — stays with the listener.)
 *
 * Should `_parent` ever change, a connection's parts would be found under two keys: the
 * connection gate would take an established connection for a pending one and evict it, which
 * test/adversarial/handshake-starvation.test.ts catches.
 */
import type http2 from 'node:http2';
import type { Socket } from 'node:net';

export class Connection {
  /** The peer's address, taken at accept: a destroyed socket no longer says it. */
  remoteAddress: string | undefined;
  /** The identity the connection gate counts the connection under. */
  gateIdentity: string | undefined;
  /** An h2 server's session on this connection, to close it with GOAWAY rather than a cut. */
  h2Session: http2.ServerHttp2Session | undefined;
  /**
   * The connection answered a refusal and is closing. Node's HTTP/1.1 parser has already read the
   * requests a client pipelined behind the refused one and emits each of them: authorizing,
   * counting and logging those (200 pipelined denied requests were 200 denials and 200 access
   * lines for one connection) or forwarding them would serve a connection being closed. A request
   * on a closing connection is ignored: no answer, no count, no log line.
   */
  closing = false;
  /** A request body is being received: the idle limit is bodyIdleTimeout, not idleTimeout. */
  receivingBody = false;
  /** Headers about the caller that are the same for every request on the connection (caller-headers.ts). */
  callerHeaders: readonly string[] | undefined;
  /** The socket byte counts at the end of the last recorded exchange (server-metrics.ts). */
  counted = { read: 0, written: 0 };
  #inFlight = 0;

  constructor(readonly socket: Socket) {}

  /** Counts a request on the connection until `exchange` (a response, a stream, an upgraded socket) closes. */
  requestInFlight(exchange: { once(event: 'close', listener: () => void): unknown }): void {
    this.#inFlight++;
    exchange.once('close', () => {
      this.#inFlight--;
    });
  }

  /** Whether a request is in flight: closing an idle connection loses nothing the client cannot retry. */
  get busy(): boolean {
    return this.#inFlight > 0;
  }
}

const connections = new WeakMap<object, Connection>();

/** The TCP socket under a TLS socket (or an h2 session's proxy of one); the socket itself for plain TCP. */
export function rawSocketOf(socket: Socket): Socket {
  return (socket as Socket & { _parent?: Socket })._parent ?? socket;
}

/**
 * The connection `socket` stands for, if anything was kept about it yet: for reads on paths every
 * request takes (a plaintext outbound connection per request would otherwise cost an entry).
 */
export function knownConnection(socket: Socket): Connection | undefined {
  return connections.get(rawSocketOf(socket));
}

/** The connection `socket` stands for, made at first sight. */
export function connectionOf(socket: Socket): Connection {
  const raw = rawSocketOf(socket);
  let connection = connections.get(raw);
  if (!connection) {
    connection = new Connection(raw);
    connections.set(raw, connection);
  }
  return connection;
}
