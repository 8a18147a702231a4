/**
 * The node-vault client, built from our config only. node-vault reads VAULT_* variables itself
 * when an option is missing; we always pass every option so config stays the single source.
 */
import { readFileSync } from 'node:fs';
import nodeVault from 'node-vault';
import type { VaultConfig } from '../config/schema/index.js';
import { ErrorCodes, SidecarError } from '../errors.js';
import { createVaultRequest } from './http.js';

export type VaultClient = nodeVault.client;

/** vault.caCert's contents, or undefined without one; an unreadable file is a config error that names it. */
export function readVaultCa(config: Pick<VaultConfig, 'caCert'>): string | undefined {
  if (!config.caCert) return undefined;
  try {
    return readFileSync(config.caCert, 'utf8');
  } catch (err) {
    throw new SidecarError(
      ErrorCodes.CONFIG_INVALID,
      `config: vault.caCert: cannot read ${config.caCert} (${(err as NodeJS.ErrnoException).code}); check VAULT_CACERT`,
      { cause: err },
    );
  }
}

export function createVaultClient(config: VaultConfig): VaultClient {
  const ca = readVaultCa(config);
  const request = createVaultRequest({
    address: config.address,
    redirectOrigins: config.redirectOrigins,
    ca,
    rejectUnauthorized: !config.skipVerify,
    timeoutMs: config.requestTimeout * 1000,
  });
  return nodeVault({
    apiVersion: 'v1',
    endpoint: config.address,
    namespace: config.namespace ?? '',
    pathPrefix: '',
    // Unset until login; `token` is set on the client by the auth session.
    token: '',
    // LIST as `GET ?list=true`, which Vault treats the same: proxies and load balancers in front
    // of Vault (and Node's own HTTP parser) refuse the custom LIST verb with a 400.
    noCustomHTTPVerbs: true,
    // Every request goes through http.ts (redirects only within Vault's origins), not node-vault's axios.
    'request-promise': { defaults: () => request },
    // node-vault's debug output (DEBUG=node-vault) prints request bodies: login JWTs, secret_ids,
    // private keys of `issue`. It stays silent whatever DEBUG says.
    debug: () => undefined,
  });
}
