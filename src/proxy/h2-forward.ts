/**
 * HTTP/2 forwarding shared by the h2 listeners: one multiplexed client session per target
 * (reconnected when it closes, replaced after a rotation), and a stream relay that carries
 * headers, body and trailers — what gRPC needs.
 */
import http2 from 'node:http2';
import type { ErrorCode } from '../errors.js';
import { HOP_BY_HOP } from './hop-by-hop.js';
import { jsonErrorBody } from './json-error.js';

/**
 * Headers that describe one hop of the connection, never forwarded: HTTP/1's hop-by-hop set, which
 * Node's HTTP/2 refuses to send, except `trailer`, which announces gRPC's trailers.
 */
const CONNECTION_HEADERS = new Set([...HOP_BY_HOP].filter((name) => name !== 'trailer'));

export class H2Session {
  #session: http2.ClientHttp2Session | undefined;

  constructor(
    private readonly authority: string,
    private readonly options: () => http2.SecureClientSessionOptions | http2.ClientSessionOptions,
  ) {}

  get(): http2.ClientHttp2Session {
    if (!this.#session || this.#session.closed || this.#session.destroyed) {
      const session = http2.connect(this.authority, this.options());
      session.on('error', () => session.destroy());
      session.on('close', () => {
        if (this.#session === session) this.#session = undefined;
      });
      this.#session = session;
    }
    return this.#session;
  }

  /** New streams go to a new session; the old one finishes its streams and closes. */
  renew(): void {
    this.#session?.close();
    this.#session = undefined;
  }

  close(): void {
    this.#session?.close();
  }
}

export interface RelayFailure {
  readonly status: number;
  readonly code: ErrorCode;
  readonly message: string;
}

/** Relays one incoming stream to `session`, returning its response, body and trailers. */
export function relayStream(
  incoming: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  session: http2.ClientHttp2Session,
  onFailure: (err: Error & { code?: string }) => RelayFailure,
): void {
  const outgoing: http2.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || CONNECTION_HEADERS.has(name)) continue;
    outgoing[name] = value;
  }
  // gRPC sends "te: trailers", the one TE value HTTP/2 allows; keep it.
  if (headers.te === 'trailers') outgoing.te = 'trailers';
  const upstream = session.request(outgoing);
  incoming.pipe(upstream);
  upstream.on('response', (responseHeaders) => {
    const forwarded: http2.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(responseHeaders)) {
      if (value !== undefined && !CONNECTION_HEADERS.has(name)) forwarded[name] = value;
    }
    if (incoming.closed) return;
    incoming.respond(forwarded, { waitForTrailers: true });
    upstream.pipe(incoming);
  });
  let trailers: http2.OutgoingHttpHeaders = {};
  upstream.on('trailers', (received) => {
    trailers = {};
    for (const [name, value] of Object.entries(received)) if (typeof value === 'string' || Array.isArray(value)) trailers[name] = value;
  });
  incoming.on('wantTrailers', () => incoming.sendTrailers(trailers));
  upstream.on('error', (err: Error & { code?: string }) => {
    if (incoming.headersSent) {
      incoming.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    const failure = onFailure(err);
    const body = jsonErrorBody(failure.code, failure.message);
    incoming.respond({ ':status': failure.status, 'content-type': 'application/json', 'x-sidecar-error': failure.code });
    incoming.end(body);
  });
  incoming.on('close', () => {
    if (!upstream.closed) upstream.close(http2.constants.NGHTTP2_CANCEL);
  });
}
