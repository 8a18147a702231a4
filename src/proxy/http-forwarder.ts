/**
 * HTTP/1.1 forwarding shared by inbound and outbound listeners. http-proxy runs its request passes
 * (length fixes, X-Forwarded-*) and handles upgrades (WebSocket); plain requests then leave through
 * our pass, in place of http-proxy's own `stream` pass, over an undici connection pool. Why: the
 * stream pass builds a Node ClientRequest and an Agent lookup per request, which `npm run bench`
 * profiled as the largest share of the sidecar's CPU; the undici pool (llhttp, no per-request
 * socket bookkeeping) about halved the CPU per request on each side.
 */
import type http from 'node:http';
import type { Agent } from 'node:http';
import type { Duplex } from 'node:stream';
import httpProxy from 'http-proxy';
import type { Dispatcher } from 'undici';
import { hopByHop } from './hop-by-hop.js';

/** Upstream connections kept per listener (app or mTLS target); more requests queue for a free one. */
export const POOL_CONNECTIONS = 256;

export interface HttpForwarderOptions {
  /** http:// or https:// URL of the upstream. */
  readonly target: string;
  /** The pool plain requests go to; read per request, so a rotation can swap it. */
  readonly pool: () => Dispatcher;
  /** Agent for upgrades (WebSocket), which http-proxy forwards itself. */
  readonly upgradeAgent: Agent;
  /** Host header the upstream sees; undefined keeps the client's. */
  readonly host?: string;
  /** Set X-Forwarded-For/-Port/-Proto/-Host. */
  readonly xfwd: boolean;
  /** Upstream silence allowed while waiting for response headers and between body chunks. */
  readonly idleTimeoutMs: number;
  /** Answers a request that failed before its response started, or closes an upgrade's socket. */
  readonly onError: (err: Error & { code?: string }, req: http.IncomingMessage, res: http.ServerResponse | Duplex) => void;
}

export interface HttpForwarder {
  web(req: http.IncomingMessage, res: http.ServerResponse): void;
  ws(req: http.IncomingMessage, socket: Duplex, head: Buffer): void;
}

type Pass = (req: http.IncomingMessage, res: http.ServerResponse) => boolean;
/** http-proxy's pass pipeline API, which its type definitions leave out. */
type PassPipeline = { before(type: 'web' | 'ws', passName: string, pass: Pass): void };

export function createHttpForwarder(opts: HttpForwarderOptions): HttpForwarder {
  const proxy = httpProxy.createProxyServer({
    target: opts.target,
    agent: opts.upgradeAgent,
    xfwd: opts.xfwd,
    ws: true,
    changeOrigin: opts.host !== undefined,
    proxyTimeout: opts.idleTimeoutMs,
  });
  proxy.on('error', (err, req, res) => opts.onError(err, req, res as http.ServerResponse | Duplex));
  // `expect`: Node's server has already answered `100-continue`; the body follows in the request stream.
  const dropFromRequest =
    opts.host === undefined ? (name: string) => name === 'expect' : (name: string) => name === 'expect' || name === 'host';
  // Runs after http-proxy's deleteLength/timeout/XHeaders passes and ends the pipeline (true).
  (proxy as unknown as PassPipeline).before('web', 'stream', function pooledStream(req, res) {
    forward(req, res, opts, dropFromRequest);
    return true;
  });
  return {
    web: (req, res) => proxy.web(req, res),
    ws: (req, socket, head) => proxy.ws(req, socket, head),
  };
}

function forward(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  opts: HttpForwarderOptions,
  dropFromRequest: (name: string) => boolean,
): void {
  const length = req.headers['content-length'];
  const hasBody = length === undefined ? req.headers['transfer-encoding'] !== undefined : length !== '0';
  opts.pool().dispatch(
    {
      path: req.url ?? '/',
      method: req.method ?? 'GET',
      headers: requestHeaders(req.headers, dropFromRequest, opts.host),
      body: hasBody ? req : null,
      headersTimeout: opts.idleTimeoutMs,
      bodyTimeout: opts.idleTimeoutMs,
    },
    new ResponseRelay(req, res, opts.onError),
  );
}

/** The client's headers minus hop-by-hop and `drop` ones, as undici's flat list, with our Host if any. */
function requestHeaders(headers: http.IncomingHttpHeaders, drop: (name: string) => boolean, host: string | undefined): string[] {
  const out = forwardable(headers, drop);
  if (host !== undefined) out.push('host', host);
  return out;
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
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
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
    if (this.res.write(chunk)) return;
    controller.pause();
    this.res.once('drain', () => controller.resume());
  }

  onResponseEnd(): void {
    this.res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.res.off('close', this.#clientClosed);
    if (this.res.destroyed) return;
    // Before the status line we can still answer with an error; after it, cutting the connection
    // is the only honest signal that the body is incomplete.
    if (!this.res.headersSent) this.fail(err, this.req, this.res);
    else this.res.destroy(err);
  }
}
