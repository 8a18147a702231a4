/**
 * The admin server, on localhost by default: /healthz (alive), /readyz (a valid certificate is
 * published and every listener is bound, and we are not draining), /certs (what we present, never
 * key material).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HostPort } from '../config/parse.js';
import type { CertificateInfo } from '../identity/bundle.js';
import { drainServer, listenOn } from '../proxy/server-lifecycle.js';

export interface AdminState {
  /** Reasons the sidecar is not ready; empty when ready. */
  notReadyReasons(): string[];
  certificate(): CertificateInfo | undefined;
  nextRenewal(): Date | undefined;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(text);
}

export class AdminServer {
  readonly #server: http.Server;
  #bound: AddressInfo | undefined;

  constructor(
    private readonly listenAddress: HostPort,
    state: AdminState,
  ) {
    this.#server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') return sendJson(res, 405, { error: 'method not allowed' });
      if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
      if (path === '/readyz') {
        const reasons = state.notReadyReasons();
        return sendJson(res, reasons.length === 0 ? 200 : 503, { ready: reasons.length === 0, reasons });
      }
      if (path === '/certs') {
        const cert = state.certificate();
        if (!cert) return sendJson(res, 503, { error: 'no certificate published yet' });
        return sendJson(res, 200, { ...cert, nextRenewal: state.nextRenewal() ?? null });
      }
      sendJson(res, 404, { error: 'not found', endpoints: ['/healthz', '/readyz', '/certs'] });
    });
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
