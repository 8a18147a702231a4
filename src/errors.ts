/**
 * Every error a user can see carries a stable `code` (documented in docs/troubleshooting.md, "Errors") and a message that
 * says what is wrong and what to do. Users and tests match on `code`, never on message text.
 */
export const ErrorCodes = {
  CONFIG_INVALID: 'SIDECAR_CONFIG_INVALID',
  CONFIG_FILE_UNREADABLE: 'SIDECAR_CONFIG_FILE_UNREADABLE',
  VAULT_UNREACHABLE: 'SIDECAR_VAULT_UNREACHABLE',
  VAULT_AUTH_FAILED: 'SIDECAR_VAULT_AUTH_FAILED',
  VAULT_PERMISSION_DENIED: 'SIDECAR_VAULT_PERMISSION_DENIED',
  VAULT_REQUEST_FAILED: 'SIDECAR_VAULT_REQUEST_FAILED',
  VAULT_REDIRECT_REFUSED: 'SIDECAR_VAULT_REDIRECT_REFUSED',
  VAULT_SETUP_OLD_NAMES: 'SIDECAR_VAULT_SETUP_OLD_NAMES',
  PKI_ISSUE_REJECTED: 'SIDECAR_PKI_ISSUE_REJECTED',
  CERT_REFUSED: 'SIDECAR_CERT_REFUSED',
  CERT_EXPIRING: 'SIDECAR_CERT_EXPIRING',
  CERT_NO_SAN: 'SIDECAR_CERT_NO_SAN',
  TRUST_REFRESH_FAILED: 'SIDECAR_TRUST_REFRESH_FAILED',
  CRL_STALE: 'SIDECAR_CRL_STALE',
  CRL_MISSING: 'SIDECAR_CRL_MISSING',
  ISSUER_REMOVED: 'SIDECAR_ISSUER_REMOVED',
  FILES_UNREADABLE: 'SIDECAR_FILES_UNREADABLE',
  SHUTDOWN_REVOKE_FAILED: 'SIDECAR_SHUTDOWN_REVOKE_FAILED',
  NO_CERTIFICATE: 'SIDECAR_NO_CERTIFICATE',
  LISTEN_FAILED: 'SIDECAR_LISTEN_FAILED',
  UPSTREAM_UNREACHABLE: 'SIDECAR_UPSTREAM_UNREACHABLE',
  UPSTREAM_HANDSHAKE_FAILED: 'SIDECAR_UPSTREAM_HANDSHAKE_FAILED',
  APP_UNREACHABLE: 'SIDECAR_APP_UNREACHABLE',
  AUTHZ_DENIED: 'SIDECAR_AUTHZ_DENIED',
  BAD_REQUEST: 'SIDECAR_BAD_REQUEST',
  HEADERS_TOO_LARGE: 'SIDECAR_HEADERS_TOO_LARGE',
  UPSTREAM_RESET: 'SIDECAR_UPSTREAM_RESET',
  UPSTREAM_PROTOCOL_ERROR: 'SIDECAR_UPSTREAM_PROTOCOL_ERROR',
  ADMIN_FORBIDDEN: 'SIDECAR_ADMIN_FORBIDDEN',
  ROTATE_THROTTLED: 'SIDECAR_ROTATE_THROTTLED',
  STARTUP_TIMEOUT: 'SIDECAR_STARTUP_TIMEOUT',
  USAGE: 'SIDECAR_USAGE',
  INJECT_INVALID: 'SIDECAR_INJECT_INVALID',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/**
 * Why, as data, for code that branches on it and for tests (the message is for people). Each
 * family of errors names its own reasons; see VaultFailure in vault/errors.ts.
 */
export interface ErrorReason {
  /** A short snake_case word, stable like the code. */
  readonly reason: string;
}

export class SidecarError<R extends ErrorReason = ErrorReason> extends Error {
  readonly code: ErrorCode;
  /** The reason as data; undefined where the code says it all. */
  readonly reason: R | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; reason?: R }) {
    super(message, options);
    this.name = 'SidecarError';
    this.code = code;
    this.reason = options?.reason;
  }
}

export function isSidecarError(err: unknown): err is SidecarError {
  return err instanceof SidecarError;
}

/**
 * One line for humans: the message, then the code users can look up. An error that carries several
 * problems (a config with three mistakes) is one such line per problem.
 */
export function formatError(err: SidecarError): string {
  return err.message
    .split('\n')
    .map((line) => `${line} [${err.code}]`)
    .join('\n');
}

/** Network error codes that mean the other end cannot be reached (an upstream, the app, Vault). */
export const UNREACHABLE_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
]);

/** An error's message, for a line that quotes it; whatever was thrown. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
