/**
 * The keep-alive pool of mTLS connections behind an outbound http listener. One undici Pool per
 * TLS generation: its connections present that generation's certificate and its TLS session
 * cache only resumes sessions made with it. The first request after a rotation gets a new pool;
 * the old one finishes what it carries and closes, so no request is dropped and none goes out
 * with the old identity after.
 */

import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { PerGeneration, type TlsProvider } from '../../tls/generation.js';
import { type ConnectionDeadlines, IN_FLIGHT_GRACE_MS } from '../certificate-deadline.js';
import type { Upstream } from '../upstream.js';
import { buildConnector, Pool } from './undici-pool.js';

export class MtlsPool {
  readonly #pools: PerGeneration<Pool>;

  constructor(
    contexts: TlsProvider,
    private readonly upstream: Upstream,
    /** TCP connect plus TLS handshake must finish within this. */
    private readonly connectTimeoutMs: number,
    /** The listener's maxConnections: each client connection can hold one, so slow clients only ever wait on themselves. */
    private readonly connections: number,
    /** Retires the pool when one of its connections' server certificate ends. */
    private readonly deadlines?: ConnectionDeadlines,
  ) {
    this.#pools = new PerGeneration(
      () => contexts.current().id,
      () => this.#create(),
      // Finishes what it carries (each connection after its request), then closes.
      (old) => void old.close().catch(() => undefined),
    );
  }

  /** The pool new requests go to: the current generation's. */
  current(): Pool {
    return this.#pools.get();
  }

  /** Closes every connection, in flight or idle (after the listener drained). */
  async destroy(): Promise<void> {
    await this.#pools.peek()?.destroy();
  }

  /**
   * `pool` has a connection whose server certificate ended: new requests go to a new pool, and
   * `ended` is cut if its request still runs IN_FLIGHT_GRACE_MS later.
   */
  #endedIn(pool: Pool, ended: Duplex): void {
    const cut = setTimeout(() => ended.destroy(), IN_FLIGHT_GRACE_MS).unref();
    ended.once('close', () => clearTimeout(cut));
    this.#pools.retireIfCurrent(pool);
  }

  #create(): Pool {
    const dial = buildConnector({ ...this.upstream.tlsOptions(), timeout: this.connectTimeoutMs, maxCachedSessions: 100 });
    const deadlines = this.deadlines;
    // undici does not say which of its connections is busy: at a server certificate's end the whole
    // pool is retired, so the connection closes after its request and the next request dials anew.
    const connect: typeof dial = deadlines
      ? (options, callback) =>
          dial(options, (err, socket) => {
            if (!err && socket) deadlines.watch(socket as TLSSocket, () => this.#endedIn(pool, socket));
            (callback as (e: typeof err, s: typeof socket) => void)(err, socket);
          })
      : dial;
    const pool: Pool = new Pool(`https://${this.upstream.targetText}`, { connect, connections: this.connections });
    return pool;
  }
}
