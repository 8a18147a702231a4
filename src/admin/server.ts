/**
 * The admin server, on localhost by default: /healthz (alive), /readyz (a valid certificate is
 * published, every listener is bound, and we are not draining), /metrics (Prometheus), /certs
 * (what we present, never key material) and POST /rotate (renew now).
 *
 * Kubelet probes come from the node, so in a pod the server listens on the pod IP, where any pod
 * in the cluster can reach it. From there it serves the probes and metrics only (PUBLIC); /certs
 * and POST /rotate (a Vault issuance per call, at most once per admin.rotateMinInterval) answer
 * loopback callers — a process in the pod, or `kubectl port-forward`, which arrives on loopback.
 * Connections get the listeners' kind of limits (limits.ts), and /metrics is rendered at most 20
 * times a second (metrics-cache.ts), so pipelined scrapes cannot keep the probes waiting.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HostPort } from '../config/parse.js';
import { ErrorCodes } from '../errors.js';
import type { CertificateInfo } from '../identity/bundle.js';
import { drainServer, listenOn } from '../proxy/server-lifecycle.js';
import { adminServerOptions, capConnections } from './limits.js';
import { cachedRender, type Rendered } from './metrics-cache.js';

export interface AdminState {
  /** Reasons the sidecar is not ready; empty when ready. */
  notReadyReasons(): string[];
  /**
   * The current certificate: what it says, and the leaf itself as PEM (public; an operator
   * revokes with it, since roles with no_store=true cannot be revoked by serial). Never a key.
   */
  certificate(): (CertificateInfo & { readonly certificate: string }) | undefined;
  nextRenewal(): Date | undefined;
  metrics(): Promise<{ contentType: string; text: string }>;
  /** Starts a renewal now; false when one is already in flight or the sidecar is not running. */
  rotate(): boolean;
}

const ENDPOINTS = ['GET /healthz', 'GET /readyz', 'GET /metrics', 'GET /certs', 'POST /rotate'];

/** What a caller outside the pod may ask: the kubelet's probes and Prometheus' scrape. */
const PUBLIC = new Set(['/healthz', '/readyz', '/metrics']);

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(text);
}

/** 127.0.0.0/8, ::1, and IPv4 loopback seen through a dual-stack socket. */
function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return v4.startsWith('127.') || address === '::1';
}

interface RotateThrottle {
  /** Seconds between accepted rotations. */
  readonly minIntervalSeconds: number;
  lastAcceptedAt: number | undefined;
}

function rotate(state: AdminState, throttle: RotateThrottle, req: http.IncomingMessage, res: http.ServerResponse, now: number): void {
  if (!isLoopback(req.socket.remoteAddress)) {
    sendJson(res, 403, {
      error: { code: ErrorCodes.ADMIN_FORBIDDEN, message: 'POST /rotate answers loopback callers only; run it from inside the pod' },
    });
    return;
  }
  const waitMs = throttle.lastAcceptedAt === undefined ? 0 : throttle.lastAcceptedAt + throttle.minIntervalSeconds * 1000 - now;
  if (waitMs > 0) {
    res.setHeader('retry-after', String(Math.ceil(waitMs / 1000)));
    sendJson(res, 429, {
      error: {
        code: ErrorCodes.ROTATE_THROTTLED,
        message: `a rotation was requested less than admin.rotateMinInterval (${throttle.minIntervalSeconds}s) ago; retry later`,
      },
    });
    return;
  }
  if (!state.rotate()) {
    sendJson(res, 409, { rotating: false, message: 'a renewal is already in progress, or the sidecar is not running' });
    return;
  }
  throttle.lastAcceptedAt = now;
  sendJson(res, 202, { rotating: true, message: 'renewal started; watch /certs for the new serial' });
}

async function route(
  state: AdminState,
  throttle: RotateThrottle,
  metrics: () => Promise<Rendered>,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  if (!PUBLIC.has(path) && !isLoopback(req.socket.remoteAddress)) {
    return sendJson(res, 403, {
      error: {
        code: ErrorCodes.ADMIN_FORBIDDEN,
        message: `${path === '/rotate' || path === '/certs' ? path : 'this path'} answers loopback callers only; from outside the pod only ${[...PUBLIC].join(', ')} are served (use kubectl port-forward or exec)`,
      },
    });
  }
  if (path === '/rotate') {
    if (method !== 'POST') return sendJson(res, 405, { error: 'use POST /rotate' });
    return rotate(state, throttle, req, res, Date.now());
  }
  if (method !== 'GET') return sendJson(res, 405, { error: 'method not allowed', endpoints: ENDPOINTS });
  if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
  if (path === '/readyz') {
    const reasons = state.notReadyReasons();
    return sendJson(res, reasons.length === 0 ? 200 : 503, { ready: reasons.length === 0, reasons });
  }
  if (path === '/metrics') {
    const { contentType, text } = await metrics();
    res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
    res.end(text);
    return;
  }
  if (path === '/certs') {
    const cert = state.certificate();
    if (!cert) return sendJson(res, 503, { error: 'no certificate published yet' });
    return sendJson(res, 200, { ...cert, nextRenewal: state.nextRenewal() ?? null });
  }
  sendJson(res, 404, { error: 'not found', endpoints: ENDPOINTS });
}

export class AdminServer {
  readonly #server: http.Server;
  #bound: AddressInfo | undefined;

  constructor(
    private readonly listenAddress: HostPort,
    state: AdminState,
    rotateMinIntervalSeconds: number,
  ) {
    const throttle: RotateThrottle = { minIntervalSeconds: rotateMinIntervalSeconds, lastAcceptedAt: undefined };
    const metrics = cachedRender(() => state.metrics());
    this.#server = http.createServer(adminServerOptions(), (req, res) => {
      route(state, throttle, metrics, req, res).catch((err: unknown) => {
        if (!res.headersSent) sendJson(res, 500, { error: err instanceof Error ? err.message : String(err) });
        else res.destroy();
      });
    });
    capConnections(this.#server);
  }

  async listen(): Promise<AddressInfo> {
    this.#bound = await listenOn(this.#server, this.listenAddress, 'admin.listen');
    return this.#bound;
  }

  address(): AddressInfo | undefined {
    return this.#bound;
  }

  close(): Promise<void> {
    return drainServer(this.#server, 1000);
  }
}
