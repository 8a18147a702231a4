/**
 * An https.Agent whose connections present the *current* certificate: the secure context is read
 * from TlsContexts at dial time, so after a rotation the next new connection uses the new
 * certificate while pooled ones carry on. The server must present `expectedName`.
 */
import https from 'node:https';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { TlsContexts } from '../tls/contexts.js';

export interface UpstreamIdentity {
  readonly expectedName: string;
  readonly servername: string | undefined;
  /** TCP connect plus TLS handshake must finish within this. */
  readonly connectTimeoutMs: number;
}

export class MtlsAgent extends https.Agent {
  /**
   * Bumped at each rotation and part of the pool key: cached TLS sessions (whose resumption would
   * present the previous certificate's identity) and pooled sockets of the old certificate are not
   * picked for new requests; the old sockets finish what they carry and idle out.
   */
  #generation = 0;

  constructor(
    private readonly contexts: TlsContexts,
    private readonly upstream: UpstreamIdentity,
  ) {
    super({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, maxCachedSessions: 100 });
    contexts.onChange(() => {
      this.#generation++;
    });
  }

  override getName(options?: https.RequestOptions): string {
    return `${super.getName(options)}:g${this.#generation}`;
  }

  override createConnection(options: tls.ConnectionOptions, callback?: (err: Error | null, socket: Duplex) => void): Duplex {
    const { expectedName, servername } = this.upstream;
    const dialOptions: tls.ConnectionOptions = {
      ...options,
      secureContext: this.contexts.clientContext(),
      rejectUnauthorized: true,
      servername,
      checkServerIdentity: (_host, cert) => tls.checkServerIdentity(expectedName, cert),
    };
    // https.Agent's own createConnection adds TLS session resumption; reuse it.
    const socket = (
      https.Agent.prototype as unknown as { createConnection: (o: tls.ConnectionOptions, cb?: unknown) => tls.TLSSocket }
    ).createConnection.call(this, dialOptions, callback);
    const timer = setTimeout(
      () =>
        socket.destroy(
          Object.assign(new Error(`no mTLS connection to ${expectedName} within ${this.upstream.connectTimeoutMs} ms`), {
            code: 'ETIMEDOUT',
          }),
        ),
      this.upstream.connectTimeoutMs,
    );
    socket.once('secureConnect', () => clearTimeout(timer));
    socket.once('close', () => clearTimeout(timer));
    return socket;
  }
}
