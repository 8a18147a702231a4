/**
 * A small HTTP proxy in front of a real Vault, for the states Vault itself will not produce on
 * demand: some paths failing (HTTP 500), an answer rewritten on its way back, and a count of the
 * requests that reached it. Everything else passes through unchanged.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface VaultProxy {
  /** http://127.0.0.1:<port>, for VAULT_ADDR. */
  readonly address: string;
  /** Paths (with query) the proxy answers with HTTP 500 without asking Vault. */
  fail(pattern: RegExp | undefined): void;
  /**
   * Answers matching paths with a 307 to `location(path)`, as a Vault HA standby does. A path under
   * /active/ is never redirected: the proxy forwards it to Vault without that prefix (a same-origin
   * "active node").
   */
  redirect(pattern: RegExp, location: (path: string) => string): void;
  /** Rewrites the JSON answer for matching paths. */
  rewrite(pattern: RegExp, change: (body: Record<string, unknown>) => Record<string, unknown>): void;
  /** Every request seen, as `METHOD /path?query`, in order. */
  readonly seen: string[];
  close(): void;
}

export async function startVaultProxy(vaultAddress: string): Promise<VaultProxy> {
  const target = new URL(vaultAddress);
  let failing: RegExp | undefined;
  const redirects: { pattern: RegExp; location: (path: string) => string }[] = [];
  const rewrites: { pattern: RegExp; change: (body: Record<string, unknown>) => Record<string, unknown> }[] = [];
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    const asked = req.url ?? '/';
    seen.push(`${req.method} ${asked}`);
    const url = asked.startsWith('/active/') ? asked.slice('/active'.length) : asked;
    const redirect = asked === url ? redirects.find((r) => r.pattern.test(url)) : undefined;
    if (redirect) {
      req.resume();
      res.writeHead(307, { location: redirect.location(url) });
      res.end();
      return;
    }
    if (failing?.test(url)) {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: ['injected failure (test proxy)'] }));
      return;
    }
    const rewrite = rewrites.find((r) => r.pattern.test(url));
    const upstream = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: url, headers: { ...req.headers, host: target.host } },
      (answer) => {
        if (!rewrite) {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        answer.on('data', (c: Buffer) => chunks.push(c));
        answer.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          const body = text && (answer.statusCode ?? 0) < 300 ? JSON.stringify(rewrite.change(JSON.parse(text))) : text;
          const { 'content-length': _, 'transfer-encoding': __, ...headers } = answer.headers;
          res.writeHead(answer.statusCode ?? 502, { ...headers, 'content-length': Buffer.byteLength(body) });
          res.end(body);
        });
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    fail(pattern) {
      failing = pattern;
    },
    redirect(pattern, location) {
      redirects.push({ pattern, location });
    },
    rewrite(pattern, change) {
      rewrites.push({ pattern, change });
    },
    seen,
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}
