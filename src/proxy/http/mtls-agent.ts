/**
 * The https.Agent http-proxy dials with for upgrades (WebSocket) on an outbound http listener;
 * plain requests use MtlsPool. Its connections present the *current* certificate: the secure
 * context is read from the current TLS generation at dial time, so after a rotation the next new
 * connection uses the new certificate. The server must present `expectedName`.
 */
import https from 'node:https';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import type { TlsProvider } from '../../tls/generation.js';
import type { ConnectionDeadlines } from '../certificate-deadline.js';
import type { Upstream } from '../upstream.js';

/** The TLS generation a request (and the socket made for it) was named with; see getName. */
const GENERATION = Symbol('tlsGeneration');
type GenerationStamped = { [GENERATION]?: number };

export class MtlsAgent extends https.Agent {
  constructor(
    private readonly contexts: TlsProvider,
    private readonly upstream: Upstream,
    /** TCP connect plus TLS handshake must finish within this. */
    private readonly connectTimeoutMs: number,
    /** Closes a connection (an upgraded WebSocket) whose server certificate ends. */
    private readonly deadlines?: ConnectionDeadlines,
  ) {
    super({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, maxCachedSessions: 100 });
    // After the Agent's own 'free' handler: a socket of an older generation (a refused upgrade
    // answered with keep-alive after a rotation) is closed instead of waiting in the free pool.
    // (Only one left idle: the Agent hands a freed socket to a request queued under its name first.)
    this.on('free', (socket: Duplex, options: https.RequestOptions & GenerationStamped) => {
      if (options[GENERATION] === this.contexts.current().id) return;
      if (this.freeSockets[this.getName(options)]?.includes(socket as never)) socket.destroy();
    });
  }

  /**
   * The TLS generation is part of the pool key, so cached TLS sessions (whose resumption would
   * present the previous certificate's identity) and pooled sockets of an old generation are never
   * picked for new requests. The generation is stamped on the options the first time they are
   * named: the Agent names the same request (and the socket made for it, whose options are a copy)
   * again when the socket is freed or closed, and must find it under the same key then — named
   * with the generation of that later moment, an old socket was handed to a new request and its
   * entry was never removed.
   */
  override getName(options?: https.RequestOptions): string {
    const stamped = (options ?? {}) as GenerationStamped;
    if (stamped[GENERATION] === undefined) {
      // A new request: it is named with the generation now, and idle sockets of older ones go.
      stamped[GENERATION] = this.contexts.current().id;
      this.#closeIdleOfOlderGenerations(stamped[GENERATION]);
    }
    return `${super.getName(options)}:g${stamped[GENERATION]}`;
  }

  /** Closes the idle pooled sockets named with a generation other than `id` (each removes itself from the pool as it closes). */
  #closeIdleOfOlderGenerations(id: number): void {
    const suffix = `:g${id}`;
    for (const [name, sockets] of Object.entries(this.freeSockets)) {
      if (!name.endsWith(suffix)) for (const socket of [...(sockets ?? [])]) socket.destroy();
    }
  }

  override createConnection(options: tls.ConnectionOptions, callback?: (err: Error | null, socket: Duplex) => void): Duplex {
    // The current certificate always (tlsOptions), and a cached TLS session only for a request of
    // the current generation: a request queued before a rotation gets its connection after it,
    // under its old name, whose cached session would resume the old certificate's identity.
    const current = (options as GenerationStamped)[GENERATION] === this.contexts.current().id;
    const dialOptions: tls.ConnectionOptions = { ...options, ...this.upstream.tlsOptions(), ...(current ? {} : { session: undefined }) };
    // https.Agent's own createConnection adds TLS session resumption (unless `session` is set); reuse it.
    const socket = (
      https.Agent.prototype as unknown as { createConnection: (o: tls.ConnectionOptions, cb?: unknown) => tls.TLSSocket }
    ).createConnection.call(this, dialOptions, callback);
    const timer = setTimeout(
      () =>
        socket.destroy(
          Object.assign(new Error(`no mTLS connection to ${this.upstream.expectedName} within ${this.connectTimeoutMs} ms`), {
            code: 'ETIMEDOUT',
          }),
        ),
      this.connectTimeoutMs,
    );
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      this.deadlines?.watch(socket, () => socket.destroy());
    });
    socket.once('close', () => clearTimeout(timer));
    return socket;
  }
}
