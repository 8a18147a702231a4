/**
 * The Vault names of a service's sidecar identity: one PKI role, one policy and one kubernetes auth
 * role per service *and namespace*. `vault setup` writes them; `inject`, the webhook, the Helm chart
 * and deploy/ point sidecars at them. Kept in one place so they cannot drift apart.
 *
 * `<service>.<namespace>` reads like the service's own DNS name, and it cannot collide: both parts
 * are DNS labels (no dots), so `a-b.c` and `a.b-c` stay apart where `a-b-c` would not. A name
 * without the namespace (what vault setup made before) let `orders` in `dev` rebind the roles of
 * `orders` in `shop`.
 */

/** A Kubernetes namespace or Service name: an RFC 1123 label. */
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** A ServiceAccount name: an RFC 1123 subdomain. */
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

export interface VaultNames {
  /** `<mount>/roles/<pkiRole>`; the sidecar's `vault.pki.role`. */
  pkiRole: string;
  /** `sys/policies/acl/<policy>`. */
  policy: string;
  /** `auth/<mount>/role/<authRole>`; the sidecar's `vault.auth.role`. */
  authRole: string;
}

export function vaultNames(service: string, namespace: string): VaultNames {
  const role = `${service}.${namespace}`;
  return { pkiRole: role, policy: `${role}-sidecar`, authRole: role };
}

/** What vault setup before per-namespace names made for a service: detected, never written. */
export function unqualifiedNames(service: string): VaultNames {
  return { pkiRole: service, policy: `${service}-sidecar`, authRole: service };
}

/** Problems with a service's names, each naming the field; empty when they are usable. */
export function serviceNameProblems(service: { name: string; namespace: string; serviceAccount: string }): string[] {
  const problems: string[] = [];
  const label = (what: string, value: string) => {
    if (!DNS_LABEL.test(value)) {
      problems.push(`${what} "${value}" is not a DNS label (lowercase letters, digits and -, at most 63), as Kubernetes names are`);
    }
  };
  label('service', service.name);
  label('namespace', service.namespace);
  if (!DNS_SUBDOMAIN.test(service.serviceAccount)) {
    problems.push(`service account "${service.serviceAccount}" is not a Kubernetes service account name (a DNS subdomain)`);
  }
  return problems;
}
