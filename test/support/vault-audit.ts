/**
 * Vault's own count of what it was asked: a file audit device on a (private) Vault, and the
 * requests it logged since a mark. Vault writes every request to it, unauthenticated PKI reads
 * included, so this is what an operator's audit pipeline pays for.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { vaultApi } from './vault-api.js';
import type { TestVault } from './vault-setup.js';

export interface AuditedRequest {
  readonly time: string;
  readonly path: string;
  readonly operation: string;
}

interface AuditEntry {
  readonly type: string;
  readonly time: string;
  readonly request?: { readonly path?: string; readonly operation?: string };
  readonly response?: { readonly data?: { readonly http_status_code?: number } };
}

export interface VaultAudit {
  readonly file: string;
  /** Every request logged so far, in order. */
  requests(): AuditedRequest[];
  /** The paths of the requests Vault answered 304 Not Modified, in order. */
  notModified(): string[];
}

export async function enableFileAudit(vault: TestVault): Promise<VaultAudit> {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'vault-audit-')), 'audit.log');
  await vaultApi(vault, 'PUT', 'sys/audit/budget-file', { type: 'file', options: { file_path: file } });
  const entries = () =>
    existsSync(file)
      ? readFileSync(file, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((line) => JSON.parse(line) as AuditEntry)
      : [];
  return {
    file,
    notModified: () =>
      entries()
        .filter((entry) => entry.type === 'response' && entry.response?.data?.http_status_code === 304)
        .map((entry) => entry.request?.path ?? ''),
    requests: () => {
      return entries()
        .filter((entry) => entry.type === 'request')
        .map((entry) => ({ time: entry.time, path: entry.request?.path ?? '', operation: entry.request?.operation ?? '' }));
    },
  };
}
