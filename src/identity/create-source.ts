/**
 * What the config asks of a certificate source — the identity it wants, and the source it names:
 * files, the dev CA or Vault (client, session and PKI source), with the hint the renewer logs when
 * the first certificate does not come. Each source and its libraries are imported only when the
 * config uses it (see sidecar.ts).
 */
import type { Logger } from 'pino';
import { type Config, usesVault } from '../config/schema/index.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { VaultSession } from '../vault/auth.js';
import type { CertificateSource, RequestedIdentity } from './source.js';

/** The identity a source issues a certificate for. */
export function requestedIdentity(config: Config): RequestedIdentity {
  const identity = config.identity;
  const { dnsNames, ipSans, uriSans, ttl } = identity;
  // A files certificate names itself: no name is asked of it (the files source ignores the request).
  const commonName = identity.source === 'files' ? '' : identity.commonName;
  return { commonName, dnsNames, ipSans, uriSans, ttl };
}

/** The parts that depend on where certificates come from. */
export interface SourceParts {
  readonly source: CertificateSource;
  readonly session?: VaultSession;
  readonly startupHint: string;
}

export async function createSource(config: Config, logger: Logger, metrics: Metrics): Promise<SourceParts> {
  if (config.identity.source === 'files') {
    const { FileCertificateSource } = await import('./file-source.js');
    const source = new FileCertificateSource(config.identity.files);
    return { source, startupHint: 'check the identity.files paths and that the certificate matches its key and CA' };
  }
  if (config.identity.source === 'dev') {
    logger.warn('identity.source is dev: certificates come from an in-memory CA that no other pod trusts');
    const { DevCertificateAuthority, DevCertificateSource } = await import('./dev-ca.js');
    return { source: new DevCertificateSource(await DevCertificateAuthority.create()), startupHint: 'the dev CA failed to issue' };
  }
  if (!usesVault(config)) throw new Error('identity.source vault without a vault section: the config was not validated');
  const vault = config.vault;
  const [{ createVaultClient }, { VaultSession }, { VaultPkiSource }] = await Promise.all([
    import('../vault/client.js'),
    import('../vault/auth.js'),
    import('../vault/pki.js'),
  ]);
  const client = createVaultClient(vault);
  const session = new VaultSession({
    client,
    auth: vault.auth,
    address: vault.address,
    logger: logger.child({ module: 'vault' }),
    envToken: vault.token,
    observer: { request: (operation, status, seconds) => metrics.vaultRequestDuration.observe({ operation, status }, seconds) },
    deadlineMs: vault.requestTimeout * 1000,
  });
  return {
    source: new VaultPkiSource(session, {
      mount: vault.pki.mount,
      role: vault.pki.role,
      crlMode: vault.pki.crl,
      revokeOnShutdown: vault.revokeOnShutdown,
      method: vault.pki.method,
      keyType: config.identity.keyType,
    }),
    session,
    startupHint: `check the Vault address (${vault.address}), the ${vault.auth.method} auth role and its policy, and the PKI role ${vault.pki.mount}/roles/${vault.pki.role}`,
  };
}
