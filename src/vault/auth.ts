/**
 * A Vault session: logs in with the configured method, keeps the token alive with renew-self,
 * and logs in again when the token cannot be renewed or Vault answers 403. The token lives only
 * in memory (and on the node-vault client); it is never logged.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { VaultAuthConfig } from '../config/schema/index.js';
import { ErrorCodes, SidecarError } from '../errors.js';
import { type LongTimer, setLongTimeout } from '../timers.js';
import type { VaultClient } from './client.js';
import { toVaultError, type VaultFailure, type VaultOperation, vaultStatus } from './errors.js';

interface TokenState {
  /** Seconds the token had left when we learned it; 0 means it never expires (a root token). */
  readonly ttl: number;
  readonly renewable: boolean;
}

interface AuthResponse {
  auth?: { client_token?: string; lease_duration?: number; renewable?: boolean };
  data?: { ttl?: number; renewable?: boolean };
}

function readSecretFile(path: string, field: string): string {
  try {
    const value = readFileSync(path, 'utf8').trim();
    if (!value) throw new Error('empty');
    return value;
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new SidecarError(ErrorCodes.VAULT_AUTH_FAILED, `vault: cannot read ${field} from ${path} (${reason})`, {
      cause: err,
    });
  }
}

/** Where the session reports its calls (metrics); optional so tools and tests can skip it. */
export interface VaultObserver {
  request(operation: string, status: string, seconds: number): void;
}

export interface VaultSessionOptions {
  readonly client: VaultClient;
  readonly auth: VaultAuthConfig;
  readonly address: string;
  readonly logger: Logger;
  /** From VAULT_TOKEN, for token auth without a file. */
  readonly envToken?: string | undefined;
  readonly observer?: VaultObserver | undefined;
  /** The whole of one call, headers and body (vault.requestTimeout); the client's own timeout is per socket read. 10 s by default. */
  readonly deadlineMs?: number | undefined;
  /** The clock (ms since the epoch) for the token's expiry and renewal; Date.now by default. */
  readonly now?: (() => number) | undefined;
}

export class VaultSession {
  #loggedIn = false;
  #tokenExpiresAt: Date | undefined;
  #login: Promise<void> | undefined;
  #renewTimer: LongTimer | undefined;
  #closed = false;

  readonly client: VaultClient;
  private readonly auth: VaultAuthConfig;
  private readonly address: string;
  private readonly logger: Logger;
  private readonly envToken: string | undefined;
  private readonly observer: VaultObserver | undefined;
  private readonly deadlineMs: number;
  readonly #now: () => number;

  constructor(opts: VaultSessionOptions) {
    this.client = opts.client;
    this.auth = opts.auth;
    this.address = opts.address;
    this.logger = opts.logger;
    this.envToken = opts.envToken;
    this.observer = opts.observer;
    this.deadlineMs = opts.deadlineMs ?? 10_000;
    this.#now = opts.now ?? Date.now;
  }

  /** When the current token expires; undefined before login and for tokens that never expire. */
  get tokenExpiresAt(): Date | undefined {
    return this.#tokenExpiresAt;
  }

  /** Times one Vault API call for the metrics, labelled by a short operation name and the HTTP status. */
  async #timed<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    let status = '200';
    let deadline: NodeJS.Timeout | undefined;
    try {
      // The HTTP client's timeout restarts with every byte, so a Vault that sends headers and then
      // trickles its body would hold a renewal forever: one deadline bounds the whole call.
      return await Promise.race([
        fn(),
        new Promise<never>((_, reject) => {
          deadline = setTimeout(
            () => reject(Object.assign(new Error(`no complete answer within ${this.deadlineMs / 1000}s`), { code: 'VAULT_DEADLINE' })),
            this.deadlineMs,
          );
        }),
      ]);
    } catch (err) {
      status = (err as { code?: string }).code === 'VAULT_DEADLINE' ? 'timeout' : String(vaultStatus(err) ?? 'error');
      throw err;
    } finally {
      clearTimeout(deadline);
      this.observer?.request(operation, status, (performance.now() - started) / 1000);
    }
  }

  #learnTokenTtl(ttl: number): void {
    this.#tokenExpiresAt = ttl > 0 ? new Date(this.#now() + ttl * 1000) : undefined;
  }

  /** Runs a Vault call with a valid token; on 403 logs in again once and retries (revoked or expired token). */
  async call<T>(label: VaultOperation, operation: string, fn: (client: VaultClient) => Promise<T>): Promise<T> {
    await this.#ensureLoggedIn();
    try {
      return await this.#timed(label, () => fn(this.client));
    } catch (err) {
      if (vaultStatus(err) !== 403) throw toVaultError(err, { name: label, text: operation }, this.address);
      // A token from VAULT_TOKEN cannot be replaced by logging in again: say whether it is the
      // token (revoked, expired) or its policy, since Vault answers 403 for both.
      if (this.auth.method === 'token' && !this.auth.tokenFile) {
        if (await this.#tokenIsValid()) throw toVaultError(err, { name: label, text: operation }, this.address);
        throw new SidecarError(
          ErrorCodes.VAULT_AUTH_FAILED,
          `vault: ${operation}: the token from VAULT_TOKEN is no longer valid (revoked or expired); a token from the environment cannot be replaced without a restart, so use vault.auth.tokenFile or a login method (kubernetes, approle, jwt)`,
          { cause: err },
        );
      }
      this.logger.warn({ operation }, 'vault answered 403; logging in again');
      this.#loggedIn = false;
      await this.#ensureLoggedIn();
      try {
        return await this.#timed(label, () => fn(this.client));
      } catch (retryErr) {
        throw toVaultError(retryErr, { name: label, text: operation }, this.address);
      }
    }
  }

  /** Whether the current token still works (lookup-self); unsure answers count as valid. */
  async #tokenIsValid(): Promise<boolean> {
    try {
      await this.#timed('lookup-self', () => this.client.tokenLookupSelf());
      return true;
    } catch (err) {
      return vaultStatus(err) !== 403;
    }
  }

  /** Revokes the current token (shutdown); the next call would log in again. */
  async revokeToken(): Promise<void> {
    if (!this.#loggedIn) return;
    try {
      await this.#timed('revoke-self', () => this.client.tokenRevokeSelf());
    } catch (err) {
      throw toVaultError(err, { name: 'revoke-self', text: 'token revoke-self' }, this.address);
    }
    this.#loggedIn = false;
    this.#tokenExpiresAt = undefined;
  }

  close(): void {
    this.#closed = true;
    this.#renewTimer?.clear();
  }

  async #ensureLoggedIn(): Promise<void> {
    if (this.#loggedIn) return;
    // Concurrent callers share one login rather than each starting their own.
    this.#login ??= this.#doLogin().finally(() => {
      this.#login = undefined;
    });
    await this.#login;
  }

  async #doLogin(): Promise<void> {
    const state = await this.#authenticate();
    this.#loggedIn = true;
    this.#learnTokenTtl(state.ttl);
    this.logger.info({ method: this.auth.method, ttlSeconds: state.ttl, renewable: state.renewable }, 'vault login succeeded');
    this.#scheduleTokenRenewal(state);
  }

  /** POSTs credentials to an auth method's login path and adopts the token it returns. */
  async #loginAt(mount: string, body: Record<string, string>, operation: string): Promise<TokenState> {
    let response: AuthResponse;
    try {
      this.client.token = '';
      response = await this.#timed('login', () => this.client.write(`auth/${mount}/login`, body));
    } catch (err) {
      throw this.#loginError(err, { name: 'login', text: `${operation} at auth/${mount}` });
    }
    const token = response.auth?.client_token;
    if (!token) throw new SidecarError(ErrorCodes.VAULT_AUTH_FAILED, `vault: ${operation} returned no token`);
    this.client.token = token;
    return { ttl: response.auth?.lease_duration ?? 0, renewable: response.auth?.renewable ?? false };
  }

  async #authenticate(): Promise<TokenState> {
    const auth = this.auth;
    if (auth.method === 'approle') {
      const roleId = auth.roleId ?? readSecretFile(auth.roleIdFile ?? '', 'vault.auth.roleIdFile');
      const secretId = readSecretFile(auth.secretIdFile ?? '', 'vault.auth.secretIdFile');
      return this.#loginAt(auth.mount, { role_id: roleId, secret_id: secretId }, 'login with approle');
    }
    if (auth.method === 'kubernetes' || auth.method === 'jwt') {
      // Read at every login: the kubelet rotates projected service-account tokens.
      const jwt = readSecretFile(auth.tokenFile, 'vault.auth.tokenFile');
      return this.#loginAt(auth.mount, { role: auth.role, jwt }, `login with ${auth.method} role ${auth.role}`);
    }
    this.client.token = auth.tokenFile ? readSecretFile(auth.tokenFile, 'vault.auth.tokenFile') : (this.envToken ?? '');
    try {
      const response: AuthResponse = await this.#timed('lookup-self', () => this.client.tokenLookupSelf());
      return { ttl: response.data?.ttl ?? 0, renewable: response.data?.renewable ?? false };
    } catch (err) {
      throw this.#loginError(err, { name: 'lookup-self', text: 'token lookup-self' });
    }
  }

  #loginError(err: unknown, call: { readonly name: VaultOperation; readonly text: string }): SidecarError {
    const status = vaultStatus(err);
    if (status === 400 || status === 403) {
      const mapped = toVaultError(err, call, this.address);
      return new SidecarError<VaultFailure>(
        ErrorCodes.VAULT_AUTH_FAILED,
        `vault: ${call.text} failed (${mapped.message.replace(/^vault: [^:]+: /, '')}); check the auth role and credentials`,
        { cause: err, reason: { reason: 'login_refused', operation: call.name, status } },
      );
    }
    return toVaultError(err, call, this.address);
  }

  /** Renew at 2/3 of the TTL; when renewal fails, the next call logs in again. */
  #scheduleTokenRenewal(state: TokenState): void {
    this.#renewTimer?.clear();
    if (this.#closed || state.ttl <= 0) return;
    const delayMs = Math.max(1, (state.ttl * 2) / 3) * 1000;
    this.#renewTimer = setLongTimeout(() => void this.#renewToken(state), delayMs, this.#now).unref();
  }

  async #renewToken(previous: TokenState): Promise<void> {
    if (!previous.renewable) {
      this.#loggedIn = false;
      return;
    }
    try {
      const response: AuthResponse = await this.#timed('renew-self', () => this.client.tokenRenewSelf());
      const ttl = response.auth?.lease_duration ?? 0;
      this.logger.debug({ ttlSeconds: ttl }, 'vault token renewed');
      this.#learnTokenTtl(ttl);
      // A token near its max TTL comes back with a shorter TTL than before; log in again then.
      if (ttl < previous.ttl / 2) this.#loggedIn = false;
      else this.#scheduleTokenRenewal({ ttl, renewable: response.auth?.renewable ?? false });
    } catch (err) {
      this.logger.warn(
        { code: toVaultError(err, { name: 'renew-self', text: 'token renew-self' }, this.address).code },
        'vault token renewal failed; will log in again',
      );
      this.#loggedIn = false;
    }
  }
}
