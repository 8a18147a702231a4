/**
 * The keep-alive pool of mTLS connections behind an outbound http listener. One undici Pool per
 * certificate: its connections present that certificate and its TLS session cache only resumes
 * sessions made with it. A rotation starts a new pool for new requests; the old one finishes what
 * it carries and closes, so no request is dropped and none goes out with the old identity after.
 */

import type { TlsContexts } from '../../tls/contexts.js';
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
  ) {
    this.#pool = this.#create();
    contexts.onChange(() => {
      const old = this.#pool;
      this.#pool = this.#create();
      void old.close().catch(() => undefined);
    });
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
    const connect = buildConnector({ ...this.upstream.tlsOptions(), timeout: this.connectTimeoutMs, maxCachedSessions: 100 });
    return new Pool(`https://${this.upstream.targetText}`, { connect, connections: this.connections });
  }
}
