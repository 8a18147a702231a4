/**
 * HTTP/1.1 forwarding shared by inbound and outbound listeners. Plain requests leave over an undici
 * connection pool (llhttp, no per-request socket bookkeeping: in `npm run bench` about half the CPU
 * per request of http-proxy's ClientRequest-per-request pass); upgrades (WebSocket) go through
 * http-proxy, which pipes the upgraded sockets.
 *
 * Headers: hop-by-hop ones are dropped both ways (see hop-by-hop.ts), then the listener's caller
 * headers are appended last, so nothing a client sends can remove or replace them.
 */
import type http from 'node:http';
import type { Agent } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import httpProxy from 'http-proxy';
import type { Dispatcher } from 'undici';
import { hopByHop } from '../hop-by-hop.js';
import { requestHasBody } from '../limits.js';
import { upstreamBody } from './request-body.js';

export interface HttpForwarderOptions {
  /** http:// or https:// URL of the upstream. */
  readonly target: string;
  /** The pool plain requests go to; read per request, so a rotation can swap it. */
  readonly pool: () => Dispatcher;
  /** Agent for upgrades (WebSocket), which http-proxy forwards itself. */
  readonly upgradeAgent: Agent;
  /** Host header the upstream sees; undefined keeps the client's. */
  readonly host?: string;
  /**
   * SNI for new upstream connections. Without it undici takes the SNI from the Host header (the
   * target's host), overriding the connector's: an upstream that routes on SNI got the wrong name.
   */
  readonly servername?: string;
  /** Request headers (lower-case names) the listener sets itself and a client's copy must not pass. */
  readonly dropRequestHeader?: (name: string) => boolean;
  /** Upstream silence allowed while waiting for response headers and between body chunks. */
  readonly idleTimeoutMs: number;
  /** Told of each body chunk relayed, either way (ListenerDeps.bodyRelayed). */
  readonly bodyRelayed: (bytes: number) => void;
  /** Answers a request that failed before its response started, or closes an upgrade's socket. */
  readonly onError: (err: Error & { code?: string }, req: http.IncomingMessage, res: http.ServerResponse | Duplex) => void;
}

export interface HttpForwarder {
  /** Forwards `req` with its URL as is (already normalized by the caller) and `extraHeaders` ([name, value, …]) appended last. */
  web(req: http.IncomingMessage, res: http.ServerResponse, extraHeaders?: readonly string[]): void;
  /** Forwards an upgrade; `extraHeaders` replace any copy the client sent, and Connection names only the upgrade. */
  ws(req: http.IncomingMessage, socket: Duplex, head: Buffer, extraHeaders?: readonly string[]): void;
}

export function createHttpForwarder(opts: HttpForwarderOptions): HttpForwarder {
  const proxy = httpProxy.createProxyServer({
    target: opts.target,
    agent: opts.upgradeAgent,
    ws: true,
    changeOrigin: opts.host !== undefined,
    proxyTimeout: opts.idleTimeoutMs,
  });
  proxy.on('error', (err, req, res) => opts.onError(err, req, res as http.ServerResponse | Duplex));
  const listenerDrops = opts.dropRequestHeader;
  // `expect`: Node's server has already answered `100-continue`; the body follows in the request stream.
  const dropFromRequest = (name: string) =>
    name === 'expect' || (opts.host !== undefined && name === 'host') || (listenerDrops?.(name) ?? false);
  return {
    web: (req, res, extraHeaders) => forward(req, res, opts, dropFromRequest, extraHeaders),
    ws(req, socket, head, extraHeaders) {
      // http-proxy copies the request's headers as they are: clean them here.
      for (const name of Object.keys(req.headers)) if (dropFromRequest(name)) delete req.headers[name];
      if (extraHeaders) for (let i = 0; i < extraHeaders.length; i += 2) req.headers[extraHeaders[i] as string] = extraHeaders[i + 1];
      if (opts.host !== undefined) req.headers.host = opts.host;
      req.headers.connection = 'Upgrade';
      proxy.ws(req, socket, head);
    },
  };
}

function forward(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  opts: HttpForwarderOptions,
  dropFromRequest: (name: string) => boolean,
  extraHeaders: readonly string[] | undefined,
): void {
  const headers = forwardable(req.headers, dropFromRequest);
  if (opts.host !== undefined) headers.push('host', opts.host);
  if (extraHeaders) headers.push(...extraHeaders);
  // `servername` is a dispatch option undici reads (lib/core/request.js) but its types omit.
  const options: Dispatcher.DispatchOptions & { servername?: string } = {
    path: req.url ?? '/',
    method: req.method ?? 'GET',
    headers,
    // undici takes an AsyncIterable body (Dispatcher.md, "body"); its dispatch types list only streams.
    body: requestHasBody(req.headers) ? (upstreamBody(req, opts.bodyRelayed) as unknown as Readable) : null,
    headersTimeout: opts.idleTimeoutMs,
    bodyTimeout: opts.idleTimeoutMs,
  };
  if (opts.servername !== undefined) options.servername = opts.servername;
  opts.pool().dispatch(options, new ResponseRelay(req, res, opts.onError, opts.bodyRelayed));
}

/** A message's headers as a flat [name, value, …] list, without hop-by-hop ones and those `drop` names. */
function forwardable(headers: http.IncomingHttpHeaders, drop?: (name: string) => boolean): string[] {
  const skip = hopByHop(headers.connection);
  const out: string[] = [];
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || skip.has(name) || drop?.(name)) continue;
    if (typeof value === 'string') out.push(name, value);
    else for (const v of value) out.push(name, v);
  }
  return out;
}

/** Streams the upstream's response to the client, with backpressure both ways. */
class ResponseRelay implements Dispatcher.DispatchHandler {
  #controller: Dispatcher.DispatchController | undefined;

  constructor(
    private readonly req: http.IncomingMessage,
    private readonly res: http.ServerResponse,
    /** Not named onError: undici would take that for its legacy handler API. */
    private readonly fail: HttpForwarderOptions['onError'],
    private readonly bodyRelayed: HttpForwarderOptions['bodyRelayed'],
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    // The pool may start the request after the client is already gone (closed, or refused right
    // after its handshake, as a CA certificate presented as a leaf is): never send it on then.
    if (this.res.destroyed || this.req.socket.destroyed) {
      controller.abort(new Error('the client closed the connection'));
      return;
    }
    // A client that goes away mid-response must not leave the upstream request running.
    this.res.once('close', this.#clientClosed);
  }

  #clientClosed = (): void => {
    if (!this.res.writableFinished) this.#controller?.abort(new Error('the client closed the connection'));
  };

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: http.IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    // 1xx: Node's server already answered `Expect: 100-continue`; other interim responses are dropped.
    if (statusCode < 200) return;
    const out = forwardable(headers);
    if (statusMessage) this.res.writeHead(statusCode, statusMessage, out);
    else this.res.writeHead(statusCode, out);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.bodyRelayed(chunk.length);
    if (this.res.write(chunk)) return;
    controller.pause();
    this.res.once('drain', () => controller.resume());
  }

  onResponseEnd(): void {
    this.res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.res.off('close', this.#clientClosed);
    // Destroyed, or already answered by the sidecar (a request it refused mid-body): nothing to add.
    if (this.res.destroyed || this.res.writableEnded) return;
    // Before the status line we can still answer with an error; after it, cutting the connection
    // is the only honest signal that the body is incomplete.
    if (!this.res.headersSent) this.fail(err, this.req, this.res);
    else this.res.destroy(err);
  }
}
