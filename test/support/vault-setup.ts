/**
 * What the integration tests need in Vault, set up the way docs/vault-setup.md tells a user to: a PKI mount
 * with a root CA, a role per test service, a policy that may only issue from it, and AppRole auth.
 * Idempotent, so a developer's own server (VAULT_ADDR) can be reused between runs.
 */
import { readFileSync } from 'node:fs';
import { type VaultTarget, vaultApi } from './vault-api.js';

export const PKI_MOUNT = 'pki-sidecar-test';
/** Issues certificates for any name under .test and localhost, with spiffe://test/ URIs. */
export const SERVICE_ROLE = 'test-service';
export const APPROLE_MOUNT = 'approle-sidecar-test';
export const APPROLE_ROLE = 'sidecar';

export interface TestVault extends VaultTarget {
  readonly pkiMount: string;
  readonly role: string;
  readonly approleMount: string;
  readonly approleRoleId: string;
  /** The PKI mount's root CA, PEM. */
  readonly caPem: string;
  /** The server binary, for tests that run private dev servers. */
  readonly bin: string;
}

async function ignoreExisting(call: Promise<unknown>): Promise<void> {
  try {
    await call;
  } catch (err) {
    if (!/already in use|existing mount/i.test(String(err))) throw err;
  }
}

export async function configureTestVault(
  address: string,
  rootToken: string,
  extra: { bin: string; tlsCaPem?: string },
): Promise<TestVault> {
  const vault = { address, rootToken, ...(extra.tlsCaPem ? { tlsCaPem: extra.tlsCaPem } : {}) };
  await ignoreExisting(vaultApi(vault, 'POST', `sys/mounts/${PKI_MOUNT}`, { type: 'pki', config: { max_lease_ttl: '87600h' } }));
  // As vault setup tunes its mounts: issuer and CRL reads with If-Modified-Since can answer 304.
  await vaultApi(vault, 'POST', `sys/mounts/${PKI_MOUNT}/tune`, { passthrough_request_headers: ['If-Modified-Since'] });
  const issuers = await vaultApi<{ data?: { keys?: string[] } }>(vault, 'LIST', `${PKI_MOUNT}/issuers`).catch(() => ({
    data: { keys: [] },
  }));
  if ((issuers.data?.keys ?? []).length === 0) {
    await vaultApi(vault, 'POST', `${PKI_MOUNT}/root/generate/internal`, {
      common_name: 'vault-mtls-sidecar test root',
      ttl: '87600h',
      key_type: 'ec',
      key_bits: 256,
    });
  }
  await vaultApi(vault, 'POST', `${PKI_MOUNT}/roles/${SERVICE_ROLE}`, {
    allowed_domains: ['test', 'localhost'],
    allow_subdomains: true,
    allow_bare_domains: true,
    allow_localhost: true,
    allow_ip_sans: true,
    allowed_uri_sans: ['spiffe://test/*'],
    server_flag: true,
    client_flag: true,
    key_type: 'ec',
    key_bits: 256,
    max_ttl: '24h',
    no_store: false,
  });
  await vaultApi(vault, 'PUT', `sys/policies/acl/${APPROLE_ROLE}`, {
    // The policy docs/vault-setup.md and deploy/vault-policy.hcl give a sidecar, for this mount and role.
    policy: readFileSync(new URL('../../deploy/vault-policy.hcl', import.meta.url), 'utf8')
      .replaceAll('pki_int/sign/orders.default', `${PKI_MOUNT}/sign/${SERVICE_ROLE}`)
      .replaceAll('"pki_int/', `"${PKI_MOUNT}/`),
  });
  await ignoreExisting(vaultApi(vault, 'POST', `sys/auth/${APPROLE_MOUNT}`, { type: 'approle' }));
  await vaultApi(vault, 'POST', `auth/${APPROLE_MOUNT}/role/${APPROLE_ROLE}`, {
    token_policies: [APPROLE_ROLE],
    token_ttl: '1h',
    token_max_ttl: '4h',
  });
  const roleId = await vaultApi<{ data: { role_id: string } }>(vault, 'GET', `auth/${APPROLE_MOUNT}/role/${APPROLE_ROLE}/role-id`);
  const ca = await vaultApi<{ data: { certificate: string } }>(vault, 'GET', `${PKI_MOUNT}/cert/ca`);
  return {
    ...vault,
    ...extra,
    pkiMount: PKI_MOUNT,
    role: SERVICE_ROLE,
    approleMount: APPROLE_MOUNT,
    approleRoleId: roleId.data.role_id,
    caPem: ca.data.certificate,
  };
}
