/** A few lines of Vault HTTP API for test setup (the sidecar itself talks to Vault through node-vault). */
export interface VaultTarget {
  readonly address: string;
  readonly rootToken: string;
}

export async function vaultApi<T = unknown>(
  vault: VaultTarget,
  method: string,
  path: string,
  body?: unknown,
  token: string = vault.rootToken,
): Promise<T> {
  const res = await fetch(`${vault.address}/v1/${path}`, {
    method,
    headers: { 'x-vault-token': token, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`vault ${method} ${path}: ${res.status} ${text}`);
  return (text ? JSON.parse(text) : {}) as T;
}
