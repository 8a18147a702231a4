/**
 * Names an earlier `vault setup` gave a service without its namespace: found and reported with the
 * command that deletes each, never written, since pods may still log in with them.
 */
import { unqualifiedNames, vaultNames } from './names.js';
import { checkSpec, type Mounts, type ServiceSpec } from './setup.js';
import { type VaultAdmin, vaultAdminApi } from './setup-admin-api.js';

/** A name an earlier vault setup gave a service without its namespace, still in Vault. */
export interface OldName {
  /** Its Vault path, e.g. auth/kubernetes/role/orders. */
  path: string;
  /** Whom it serves today, as far as Vault says (the namespaces it is bound to or names). */
  serves: string;
  /** The command that deletes it, once no sidecar uses it. */
  remove: string;
  /** The namespaces whose sidecars it serves, where Vault says (bound or named). */
  namespaces: string[];
}

/**
 * The unqualified role, policy and auth role of the service (names.ts), if Vault has them. Only
 * read: pods that still log in with them keep working until they are moved to the new names.
 */
export async function findOldNames(admin: VaultAdmin, spec: ServiceSpec, mounts: Mounts): Promise<OldName[]> {
  checkSpec(spec);
  const api = vaultAdminApi(admin);
  const old = unqualifiedNames(spec.name);
  const found: OldName[] = [];
  const strings = (value: unknown): string[] =>
    Array.isArray(value) ? value.map(String) : typeof value === 'string' && value ? value.split(',') : [];

  const role = await api.get(`${mounts.intermediate}/roles/${old.pkiRole}`);
  if (role) {
    // allowed_domains holds <service>.<namespace> among the longer names.
    const namespaces = strings(role.allowed_domains).flatMap((d) => {
      const rest = d.startsWith(`${spec.name}.`) ? d.slice(spec.name.length + 1) : '';
      return rest && !rest.includes('.') ? [rest] : [];
    });
    found.push({
      path: `${mounts.intermediate}/roles/${old.pkiRole}`,
      serves:
        namespaces.length > 0
          ? `names ${spec.name} in namespace ${[...new Set(namespaces)].join(', ')}`
          : 'names no namespace of this service',
      remove: `vault delete ${mounts.intermediate}/roles/${old.pkiRole}`,
      namespaces: [...new Set(namespaces)],
    });
  }
  const policy = await api.get(`sys/policies/acl/${old.policy}`);
  if (policy) {
    const text = typeof policy.policy === 'string' ? policy.policy : '';
    found.push({
      path: `sys/policies/acl/${old.policy}`,
      serves: text.includes(`${mounts.intermediate}/sign/${old.pkiRole}"`)
        ? `grants ${mounts.intermediate}/sign/${old.pkiRole}`
        : 'a policy of that name',
      remove: `vault policy delete ${old.policy}`,
      namespaces: [],
    });
  }
  const authRole = await api.get(`auth/${mounts.auth}/role/${old.authRole}`);
  if (authRole) {
    const namespaces = strings(authRole.bound_service_account_namespaces);
    found.push({
      path: `auth/${mounts.auth}/role/${old.authRole}`,
      serves: `bound to namespace ${namespaces.join(', ') || '(none)'}`,
      remove: `vault delete auth/${mounts.auth}/role/${old.authRole}`,
      namespaces,
    });
  }
  return found;
}

/**
 * One line that says what was found, that it was left alone, and what to do. The old names may
 * serve other namespaces than this run's: each namespace's sidecars move to that namespace's own
 * names (which need a vault setup of their own), never to this one's, where they could not log in.
 */
export function oldNamesMessage(spec: ServiceSpec, found: OldName[]): string {
  const served = [...new Set(found.flatMap((f) => f.namespaces))];
  const namespaces = served.length > 0 ? served : [spec.namespace];
  const moves = namespaces.map((ns) => `"${vaultNames(spec.name, ns).pkiRole}" for namespace ${ns}`).join(', ');
  const setUpFirst = namespaces.filter((ns) => ns !== spec.namespace);
  return (
    `vault setup: ${spec.name} (${spec.namespace}): Vault still has names without a namespace, as an earlier vault setup made them: ` +
    `${found.map((f) => `${f.path} (${f.serves})`).join(', ')}; left unchanged, so sidecars that use them keep working. ` +
    `Move the sidecars of each namespace to its own names, vault.pki.role and vault.auth.role ${moves}` +
    (setUpFirst.length > 0
      ? ` (run vault setup for ${spec.name} in ${setUpFirst.join(', ')} first: this run made only "${vaultNames(spec.name, spec.namespace).pkiRole}")`
      : '') +
    ` (re-run inject, or restart pods under the webhook); once no sidecar uses the old names, delete them: ${found.map((f) => f.remove).join('; ')}`
  );
}
