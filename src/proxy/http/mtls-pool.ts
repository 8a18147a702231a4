/**
 * The keep-alive pool of mTLS connections behind an outbound http listener. One undici Pool per
 * certificate: its connections present that certificate and its TLS session cache only resumes
 * sessions made with it. A rotation starts a new pool for new requests; the old one finishes what
 * it carries and closes, so no request is dropped and none goes out with the old identity after.
 */

import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { TlsContexts } from '../../tls/contexts.js';
import { type ConnectionDeadlines, IN_FLIGHT_GRACE_MS } from '../certificate-deadline.js';
import type { Upstream } from '../upstream.js';
import { buildConnector, Pool } from './undici-pool.js';

export class MtlsPool {
  #pool: Pool;

  constructor(
    contexts: TlsContexts,
    private readonly upstream: Upstream,
    /** TCP connect plus TLS handshake must finish within this. */
    private readonly connectTimeoutMs: number,
    /** The listener's maxConnections: each client connection can hold one, so slow clients only ever wait on themselves. */
    private readonly connections: number,
    /** Retires the pool when one of its connections' server certificate ends. */
    private readonly deadlines?: ConnectionDeadlines,
  ) {
    this.#pool = this.#create();
    contexts.onChange(() => this.#retire(this.#pool));
  }

  /**
   * New requests go to a new pool; `pool` finishes what it carries (each connection after its
   * request) and closes. `ended`, a connection whose server certificate ended, is cut if its
   * request still runs IN_FLIGHT_GRACE_MS later.
   */
  #retire(pool: Pool, ended?: Duplex): void {
    if (ended) {
      const cut = setTimeout(() => ended.destroy(), IN_FLIGHT_GRACE_MS).unref();
      ended.once('close', () => clearTimeout(cut));
    }
    if (pool !== this.#pool) return;
    this.#pool = this.#create();
    void pool.close().catch(() => undefined);
  }

  /** The pool new requests go to. */
  current(): Pool {
    return this.#pool;
  }

  /** Closes every connection, in flight or idle (after the listener drained). */
  async destroy(): Promise<void> {
    await this.#pool.destroy();
  }

  #create(): Pool {
    const dial = buildConnector({ ...this.upstream.tlsOptions(), timeout: this.connectTimeoutMs, maxCachedSessions: 100 });
    const deadlines = this.deadlines;
    // undici does not say which of its connections is busy: at a server certificate's end the whole
    // pool is retired, so the connection closes after its request and the next request dials anew.
    const connect: typeof dial = deadlines
      ? (options, callback) =>
          dial(options, (err, socket) => {
            if (!err && socket) deadlines.watch(socket as TLSSocket, () => this.#retire(pool, socket));
            (callback as (e: typeof err, s: typeof socket) => void)(err, socket);
          })
      : dial;
    const pool: Pool = new Pool(`https://${this.upstream.targetText}`, { connect, connections: this.connections });
    return pool;
  }
}
