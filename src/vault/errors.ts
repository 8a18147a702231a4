/** Turns node-vault and network failures into SidecarErrors with a code, a next step and the reason as data. */
import { ErrorCodes, type ErrorReason, SidecarError, UNREACHABLE_CODES } from '../errors.js';

/** What a Vault call was: the short name its metrics carry (sidecar_vault_request_duration_seconds). */
export type VaultOperation =
  | 'login'
  | 'lookup-self'
  | 'renew-self'
  | 'revoke-self'
  | 'capabilities'
  | 'issue'
  | 'check-issuers'
  | 'list-issuers'
  | 'read-issuer'
  | 'read-crl'
  | 'revoke'
  | 'health';

/** Why a Vault call failed, as data. */
export interface VaultFailure extends ErrorReason {
  readonly reason:
    | 'permission_denied'
    | 'login_refused'
    | 'issue_rejected'
    | 'http_error'
    | 'unreachable'
    | 'active_node_unreachable'
    | 'timeout'
    | 'tls'
    | 'other';
  readonly operation: VaultOperation;
  /** Vault's HTTP status, when it answered. */
  readonly status?: number;
  /** The network or TLS error code, when it did not (ECONNREFUSED, CERT_HAS_EXPIRED…). */
  readonly network?: string;
}

export type VaultError = SidecarError<VaultFailure>;

/** The reason of a Vault error, or undefined for any other error. */
export function vaultFailure(err: unknown): VaultFailure | undefined {
  const reason = err instanceof SidecarError ? (err.reason as Partial<VaultFailure> | undefined) : undefined;
  return reason?.operation ? (reason as VaultFailure) : undefined;
}

interface VaultResponseError {
  response: { statusCode: number; body?: { errors?: string[] } };
  message: string;
}

function isResponseError(err: unknown): err is VaultResponseError {
  return (
    typeof err === 'object' && err !== null && 'response' in err && typeof (err as VaultResponseError).response?.statusCode === 'number'
  );
}

/** Vault cannot be reached: the common codes, and a connection reset or aborted before its answer. */
const NETWORK_CODES: ReadonlySet<string> = new Set([...UNREACHABLE_CODES, 'ECONNRESET', 'ECONNABORTED']);

export function vaultStatus(err: unknown): number | undefined {
  return isResponseError(err) ? err.response.statusCode : undefined;
}

/**
 * `call` says what we were doing: its name (`issue`), and its words ("issue from pki/issue/web"),
 * which end up in the message, so the user knows which Vault setting to check.
 */
export function toVaultError(err: unknown, call: { readonly name: VaultOperation; readonly text: string }, address: string): SidecarError {
  if (err instanceof SidecarError) return err;
  const operation = call.text;
  const reason = (
    why: VaultFailure['reason'],
    facts: { status?: number; network?: string | undefined } = {},
  ): { cause: unknown; reason: VaultFailure } => ({
    cause: err,
    reason: {
      reason: why,
      operation: call.name,
      ...(facts.status ? { status: facts.status } : {}),
      ...(facts.network ? { network: facts.network } : {}),
    },
  });
  if (isResponseError(err)) {
    const status = err.response.statusCode;
    // Vault's errors are often multi-line ("1 error occurred:\n\t* permission denied\n\n"): one line.
    const detail = (err.response.body?.errors?.filter(Boolean).join('; ') || err.message).replace(/\s+/g, ' ').trim();
    if (status === 403) {
      return new SidecarError(
        ErrorCodes.VAULT_PERMISSION_DENIED,
        `vault: ${operation}: permission denied (${detail}); check the token's policies`,
        reason('permission_denied', { status }),
      );
    }
    if (status === 400 && call.name === 'issue') {
      return new SidecarError(
        ErrorCodes.PKI_ISSUE_REJECTED,
        `vault: ${operation}: rejected (${detail}); check that the PKI role allows the requested names, TTL and key type (identity.keyType with method sign)`,
        reason('issue_rejected', { status }),
      );
    }
    return new SidecarError(
      ErrorCodes.VAULT_REQUEST_FAILED,
      `vault: ${operation}: HTTP ${status} (${detail})`,
      reason('http_error', { status }),
    );
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
        reason('active_node_unreachable', { network: code }),
      );
    }
  }
  // Our deadline, or the client's idle timeout (axios calls it ECONNABORTED): Vault is reachable but slow.
  if (code === 'VAULT_DEADLINE' || code === 'ECONNABORTED') {
    return new SidecarError(
      ErrorCodes.VAULT_UNREACHABLE,
      `vault: ${operation}: ${address} timed out (${code === 'VAULT_DEADLINE' ? (err as Error).message : 'no data within vault.requestTimeout'}); check Vault's health and load, or raise vault.requestTimeout`,
      reason('timeout', { network: code }),
    );
  }
  if (code && NETWORK_CODES.has(code)) {
    return new SidecarError(
      ErrorCodes.VAULT_UNREACHABLE,
      `vault: ${operation}: cannot reach ${address} (${code}); check VAULT_ADDR and the network`,
      reason('unreachable', { network: code }),
    );
  }
  if (code && /CERT|SELF_SIGNED|UNABLE_TO/.test(code)) {
    return new SidecarError(
      ErrorCodes.VAULT_UNREACHABLE,
      `vault: ${operation}: TLS to ${address} failed (${code}); set VAULT_CACERT to the CA of Vault's certificate`,
      reason('tls', { network: code }),
    );
  }
  const message = err instanceof Error ? err.message : String(err);
  return new SidecarError(ErrorCodes.VAULT_REQUEST_FAILED, `vault: ${operation}: ${message}`, reason('other', { network: code }));
}
