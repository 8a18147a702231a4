/** Turns node-vault and network failures into SidecarErrors with a code and a next step. */
import { ErrorCodes, SidecarError } from '../errors.js';

interface VaultResponseError {
  response: { statusCode: number; body?: { errors?: string[] } };
  message: string;
}

function isResponseError(err: unknown): err is VaultResponseError {
  return (
    typeof err === 'object' && err !== null && 'response' in err && typeof (err as VaultResponseError).response?.statusCode === 'number'
  );
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'ECONNABORTED',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

export function vaultStatus(err: unknown): number | undefined {
  return isResponseError(err) ? err.response.statusCode : undefined;
}

/**
 * `operation` says what we were doing ("login with approle", "issue from pki/issue/web") and
 * ends up in the message, so the user knows which Vault setting to check.
 */
export function toVaultError(err: unknown, operation: string, address: string): SidecarError {
  if (err instanceof SidecarError) return err;
  if (isResponseError(err)) {
    const status = err.response.statusCode;
    // Vault's errors are often multi-line ("1 error occurred:\n\t* permission denied\n\n"): one line.
    const detail = (err.response.body?.errors?.filter(Boolean).join('; ') || err.message).replace(/\s+/g, ' ').trim();
    if (status === 403) {
      return new SidecarError(
        ErrorCodes.VAULT_PERMISSION_DENIED,
        `vault: ${operation}: permission denied (${detail}); check the token's policies`,
        { cause: err },
      );
    }
    if (status === 400 && operation.startsWith('issue')) {
      return new SidecarError(
        ErrorCodes.PKI_ISSUE_REJECTED,
        `vault: ${operation}: rejected (${detail}); check that the PKI role allows the requested names, TTL and key type (identity.keyType with method sign)`,
        { cause: err },
      );
    }
    return new SidecarError(ErrorCodes.VAULT_REQUEST_FAILED, `vault: ${operation}: HTTP ${status} (${detail})`, { cause: err });
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  // http.ts tags a failure on a redirected hop (a standby naming its active node) with both ends.
  const { vaultOrigin, redirectedBy } = (err ?? {}) as { vaultOrigin?: string; redirectedBy?: string };
  if (vaultOrigin && redirectedBy) {
    address = `${vaultOrigin} (redirected there by ${redirectedBy}: a Vault HA standby's active node)`;
    if (code && NETWORK_CODES.has(code)) {
      return new SidecarError(
        ErrorCodes.VAULT_UNREACHABLE,
        `vault: ${operation}: cannot reach ${vaultOrigin} (${code}), redirected there by ${redirectedBy} (a Vault HA standby naming its active node); check that the active node is up and that its api_addr is reachable from here`,
        { cause: err },
      );
    }
  }
  // Our deadline, or the client's idle timeout (axios calls it ECONNABORTED): Vault is reachable but slow.
  if (code === 'VAULT_DEADLINE' || code === 'ECONNABORTED') {
    return new SidecarError(
      ErrorCodes.VAULT_UNREACHABLE,
      `vault: ${operation}: ${address} timed out (${code === 'VAULT_DEADLINE' ? (err as Error).message : 'no data within vault.requestTimeout'}); check Vault's health and load, or raise vault.requestTimeout`,
      { cause: err },
    );
  }
  if (code && NETWORK_CODES.has(code)) {
    return new SidecarError(
      ErrorCodes.VAULT_UNREACHABLE,
      `vault: ${operation}: cannot reach ${address} (${code}); check VAULT_ADDR and the network`,
      { cause: err },
    );
  }
  if (code && /CERT|SELF_SIGNED|UNABLE_TO/.test(code)) {
    return new SidecarError(
      ErrorCodes.VAULT_UNREACHABLE,
      `vault: ${operation}: TLS to ${address} failed (${code}); set VAULT_CACERT to the CA of Vault's certificate`,
      { cause: err },
    );
  }
  const message = err instanceof Error ? err.message : String(err);
  return new SidecarError(ErrorCodes.VAULT_REQUEST_FAILED, `vault: ${operation}: ${message}`, { cause: err });
}
