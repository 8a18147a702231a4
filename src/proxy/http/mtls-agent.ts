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
  }

  /**
   * The TLS generation is part of the pool key: cached TLS sessions (whose resumption would
   * present the previous certificate's identity) and pooled sockets of an old generation are not
   * picked for new requests; the old sockets finish what they carry and idle out.
   */
  override getName(options?: https.RequestOptions): string {
    return `${super.getName(options)}:g${this.contexts.current().id}`;
  }

  override createConnection(options: tls.ConnectionOptions, callback?: (err: Error | null, socket: Duplex) => void): Duplex {
    const dialOptions: tls.ConnectionOptions = { ...options, ...this.upstream.tlsOptions() };
    // https.Agent's own createConnection adds TLS session resumption; reuse it.
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
