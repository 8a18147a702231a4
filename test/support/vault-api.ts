/** A few lines of Vault HTTP API for test setup (the sidecar itself talks to Vault through node-vault). */
import http from 'node:http';
import https from 'node:https';

export interface VaultTarget {
  readonly address: string;
  readonly rootToken: string;
  /** The CA of a TLS dev server's certificate. */
  readonly tlsCaPem?: string;
}

export function vaultApi<T = unknown>(
  vault: VaultTarget,
  method: string,
  path: string,
  body?: unknown,
  token: string = vault.rootToken,
): Promise<T> {
  const url = new URL(`${vault.address}/v1/${path}`);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? https : http).request(
      url,
      { method, headers: { 'x-vault-token': token, 'content-type': 'application/json' }, ca: vault.tlsCaPem },
      (res) => {
        let text = '';
        res.on('data', (c) => {
          text += c;
        });
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status < 200 || status >= 300) reject(new Error(`vault ${method} ${path}: ${status} ${text}`));
          else resolve((text ? JSON.parse(text) : {}) as T);
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
