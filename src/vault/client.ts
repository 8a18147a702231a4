/**
 * The node-vault client, built from our config only. node-vault reads VAULT_* variables itself
 * when an option is missing; we always pass every option so config stays the single source.
 */
import { readFileSync } from 'node:fs';
import nodeVault from 'node-vault';
import type { VaultConfig } from '../config/schema.js';
import { ErrorCodes, SidecarError } from '../errors.js';

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
  return nodeVault({
    apiVersion: 'v1',
    endpoint: config.address,
    namespace: config.namespace ?? '',
    pathPrefix: '',
    // Unset until login; `token` is set on the client by the auth session.
    token: '',
    requestOptions: {
      timeout: config.requestTimeout * 1000,
      strictSSL: !config.skipVerify,
      ...(ca ? { ca } : {}),
      // Vault HA standbys answer 307 to the active node; axios follows, keeping the method and body.
      maxRedirects: 5,
    },
  });
}
