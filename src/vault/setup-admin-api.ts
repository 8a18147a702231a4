/**
 * The few Vault calls `vault setup` makes with the operator's token (read, list, write), with
 * Vault's errors turned into one-line messages that say what the token lacks.
 */
import { Agent, request } from 'undici';
import { ErrorCodes, SidecarError } from '../errors.js';

export interface VaultAdmin {
  address: string;
  token: string;
  caPem?: string | undefined;
}

export type Json = Record<string, unknown>;

/** Vault's "2 errors occurred:\n\t* a\n\t* b" as ["a", "b"]: error lines stay one line. */
function oneLine(message: string): string[] {
  return message
    .replace(/^\d+ errors? occurred:/, '')
    .split(/\n\s*\*?\s*/)
    .map((s) => s.trim())
    .filter(Boolean);
}

export function vaultAdminApi(admin: VaultAdmin) {
  const dispatcher = admin.caPem ? new Agent({ connect: { ca: admin.caPem } }) : undefined;
  const call = async (method: 'GET' | 'POST' | 'LIST', path: string, body?: unknown): Promise<Json | undefined> => {
    const res = await request(`${admin.address}/v1/${path}`, {
      method: method === 'LIST' ? 'GET' : method,
      headers: {
        'x-vault-token': admin.token,
        'content-type': 'application/json',
        ...(method === 'LIST' ? { 'x-vault-list': 'true' } : {}),
      },
      ...(method === 'LIST' ? { query: { list: 'true' } } : {}),
      body: body === undefined ? undefined : JSON.stringify(body),
      ...(dispatcher ? { dispatcher } : {}),
    }).catch((err: Error) => {
      throw new SidecarError(ErrorCodes.VAULT_UNREACHABLE, `vault setup: cannot reach ${admin.address} (${err.message}); check VAULT_ADDR`);
    });
    const text = await res.body.text();
    if (res.statusCode === 404 && method !== 'POST') return undefined;
    if (res.statusCode >= 400) {
      const errors = ((JSON.parse(text || '{}') as { errors?: string[] }).errors ?? [text]).flatMap(oneLine).join('; ');
      const denied = res.statusCode === 403;
      throw new SidecarError(
        denied ? ErrorCodes.VAULT_PERMISSION_DENIED : ErrorCodes.VAULT_REQUEST_FAILED,
        `vault setup: ${method} ${path}: ${res.statusCode} ${errors}${denied ? '; VAULT_TOKEN needs a token that may mount secrets engines and write policies and auth roles' : ''}`,
      );
    }
    if (!text) return {};
    const parsed = JSON.parse(text) as { data?: Json };
    return (parsed.data ?? parsed) as Json;
  };
  return {
    get: (path: string) => call('GET', path),
    list: (path: string) => call('LIST', path),
    post: (path: string, body: unknown) => call('POST', path, body),
  };
}
