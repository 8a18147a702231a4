/**
 * `vault setup`: what a service's sidecar needs in Vault, created or brought up to date
 * idempotently — a root PKI mount, an intermediate mount signed by it (leaves never come straight
 * from the root), the service's role on the intermediate, a least-privilege policy, a kubernetes
 * auth role bound to the service account with audience "vault", and auto-tidy. Each step reads
 * what is there first and writes only what differs, so a second run reports no change; a dry
 * run only reports.
 *
 * One role per service, not one templated role for all: a role names exactly the service's DNS
 * names and SPIFFE ID, visible with `vault read`, and a compromised sidecar can get nothing else.
 * A templated role (allowed_uri_sans_template on the service account's identity) would spare the
 * per-service run but cannot pin DNS names per service, and its effect is invisible in the role.
 *
 * Names are per service and namespace (names.ts). What an earlier version made under the bare
 * service name is found by `findOldNames` (setup-old-names.ts) and reported, never written:
 * rewriting it would rebind the pods that still log in with it.
 */
import { ErrorCodes, SidecarError } from '../errors.js';
import { serviceNameProblems, vaultNames } from './names.js';
import { type Json, type VaultAdmin, vaultAdminApi } from './setup-admin-api.js';

export interface ServiceSpec {
  name: string;
  namespace: string;
  serviceAccount: string;
  /** Seconds. */
  ttl: number;
  maxTtl: number;
  keyType: 'ec' | 'rsa';
  /** Also allow `issue` (Vault generates the key); the sidecar's default `sign` keeps it local. */
  issue: boolean;
}

export interface Mounts {
  root: string;
  intermediate: string;
  auth: string;
}

export type Action = 'create' | 'update' | 'unchanged';

export interface Step {
  what: string;
  action: Action;
  /** What differs, for an update. */
  detail?: string;
}

/** The certificate names a service gets: its Service DNS names and its service account's SPIFFE ID. */
export function serviceNames(spec: ServiceSpec): { dnsNames: string[]; spiffeId: string } {
  const { name, namespace } = spec;
  return {
    dnsNames: [name, `${name}.${namespace}`, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.cluster.local`],
    spiffeId: `spiffe://cluster.local/ns/${namespace}/sa/${spec.serviceAccount}`,
  };
}

export function policyName(spec: ServiceSpec): string {
  return vaultNames(spec.name, spec.namespace).policy;
}

export function checkSpec(spec: ServiceSpec): void {
  const problems = serviceNameProblems(spec);
  if (problems.length > 0) throw new SidecarError(ErrorCodes.USAGE, `vault setup: ${problems.join('; ')}`);
}

export async function setupService(admin: VaultAdmin, spec: ServiceSpec, mounts: Mounts, dryRun: boolean): Promise<Step[]> {
  checkSpec(spec);
  const api = vaultAdminApi(admin);
  const ids = vaultNames(spec.name, spec.namespace);
  const steps: Step[] = [];
  const step = async (what: string, current: () => Promise<Json | undefined>, desired: Json, write: () => Promise<unknown>) => {
    const now = await current();
    const differs = now ? Object.keys(desired).filter((k) => !same(now[k], desired[k])) : [];
    const action: Action = !now ? 'create' : differs.length > 0 ? 'update' : 'unchanged';
    steps.push({ what, action, ...(differs.length ? { detail: differs.join(', ') } : {}) });
    if (action !== 'unchanged' && !dryRun) await write();
  };
  const mounted = async (path: string) => (await api.get('sys/mounts'))?.[`${path}/`] as Json | undefined;
  const hasIssuer = async (mount: string) => ((await api.list(`${mount}/issuers`))?.keys as unknown[] | undefined)?.length ?? 0;
  const urls = (mount: string) => ({
    issuing_certificates: [`${admin.address}/v1/${mount}/ca`],
    crl_distribution_points: [`${admin.address}/v1/${mount}/crl`],
  });
  // Sidecars read issuers and CRLs with If-Modified-Since, which reaches PKI only when the mount
  // passes the header through: then an unchanged issuer or CRL answers 304 without a body.
  const passIfModifiedSince = async (mount: string) => {
    const tune = (await mounted(mount)) ? await api.get(`sys/mounts/${mount}/tune`) : undefined;
    const headers = (tune?.passthrough_request_headers as string[] | undefined) ?? [];
    const desired = { passthrough_request_headers: [...new Set([...headers, 'If-Modified-Since'])] };
    await step(
      `${mount}/ passes If-Modified-Since through`,
      async () => tune,
      desired,
      () => api.post(`sys/mounts/${mount}/tune`, desired),
    );
  };

  // 1. The root: a PKI mount with a CA that only signs intermediates.
  await step(
    `secrets engine ${mounts.root}/ (pki, root)`,
    () => mounted(mounts.root),
    {},
    () => api.post(`sys/mounts/${mounts.root}`, { type: 'pki', config: { max_lease_ttl: '87600h' } }),
  );
  await step(
    `root CA on ${mounts.root}/`,
    async () => ((await hasIssuer(mounts.root)) > 0 ? {} : undefined),
    {},
    () =>
      api.post(`${mounts.root}/root/generate/internal`, {
        common_name: 'vault-mtls-sidecar root CA',
        key_type: 'ec',
        key_bits: 384,
        ttl: '87600h',
      }),
  );
  await step(
    `${mounts.root}/config/urls`,
    () => api.get(`${mounts.root}/config/urls`),
    urls(mounts.root),
    () => api.post(`${mounts.root}/config/urls`, urls(mounts.root)),
  );
  await passIfModifiedSince(mounts.root);

  // 2. The intermediate that issues leaves, signed by the root.
  await step(
    `secrets engine ${mounts.intermediate}/ (pki, intermediate)`,
    () => mounted(mounts.intermediate),
    {},
    () => api.post(`sys/mounts/${mounts.intermediate}`, { type: 'pki', config: { max_lease_ttl: '43800h' } }),
  );
  await step(
    `intermediate CA on ${mounts.intermediate}/, signed by ${mounts.root}/`,
    async () => ((await hasIssuer(mounts.intermediate)) > 0 ? {} : undefined),
    {},
    async () => {
      const csr = (await api.post(`${mounts.intermediate}/intermediate/generate/internal`, {
        common_name: 'vault-mtls-sidecar intermediate CA',
        key_type: 'ec',
        key_bits: 256,
      })) as { csr: string };
      const signed = (await api.post(`${mounts.root}/root/sign-intermediate`, { csr: csr.csr, format: 'pem_bundle', ttl: '43800h' })) as {
        certificate: string;
      };
      await api.post(`${mounts.intermediate}/intermediate/set-signed`, { certificate: signed.certificate });
    },
  );
  await step(
    `${mounts.intermediate}/config/urls`,
    () => api.get(`${mounts.intermediate}/config/urls`),
    urls(mounts.intermediate),
    () => api.post(`${mounts.intermediate}/config/urls`, urls(mounts.intermediate)),
  );
  await passIfModifiedSince(mounts.intermediate);
  const tidy = { enabled: true, tidy_cert_store: true, tidy_revoked_certs: true, tidy_expired_issuers: true, interval_duration: 43200 };
  await step(
    `${mounts.intermediate}/config/auto-tidy`,
    () => api.get(`${mounts.intermediate}/config/auto-tidy`),
    tidy,
    () => api.post(`${mounts.intermediate}/config/auto-tidy`, tidy),
  );

  // 3. The service's role: exactly its names, short-lived, never localhost or IPs.
  const names = serviceNames(spec);
  const role = {
    allowed_domains: names.dnsNames,
    allow_bare_domains: true,
    allow_subdomains: false,
    allow_glob_domains: false,
    allow_localhost: false,
    allow_ip_sans: false,
    allowed_uri_sans: [names.spiffeId],
    server_flag: true,
    client_flag: true,
    key_type: spec.keyType,
    key_bits: spec.keyType === 'ec' ? 256 : 2048,
    ttl: spec.ttl,
    max_ttl: spec.maxTtl,
    // Not kept in Vault's storage: short-lived leaves at one per sidecar per renewal would fill it
    // (auto-tidy only removes expired ones). The trade-off: Vault cannot list or look them up by
    // serial, so revoking one takes the certificate itself (from /certs), not its serial.
    no_store: true,
  };
  await step(
    `${mounts.intermediate}/roles/${ids.pkiRole}`,
    () => api.get(`${mounts.intermediate}/roles/${ids.pkiRole}`),
    role,
    () => api.post(`${mounts.intermediate}/roles/${ids.pkiRole}`, role),
  );

  // 4. A policy that can have CSRs signed by that role and revoke a certificate whose key it
  // holds (revokeOnShutdown.certificate: revoke-with-key takes the certificate and its key, so it
  // cannot revoke another service's certificates), and nothing else.
  const policy = [
    `# vault-mtls-sidecar: what the ${spec.name} sidecar in ${spec.namespace} may do (written by vault-mtls-sidecar vault setup)`,
    `path "${mounts.intermediate}/sign/${ids.pkiRole}" {\n  capabilities = ["update"]\n}`,
    ...(spec.issue ? [`path "${mounts.intermediate}/issue/${ids.pkiRole}" {\n  capabilities = ["update"]\n}`] : []),
    `path "${mounts.intermediate}/revoke-with-key" {\n  capabilities = ["update"]\n}`,
    '',
  ].join('\n');
  await step(
    `sys/policies/acl/${policyName(spec)}`,
    () => api.get(`sys/policies/acl/${policyName(spec)}`),
    { policy },
    () => api.post(`sys/policies/acl/${policyName(spec)}`, { policy }),
  );

  // 5. The login: the service account's projected token, audience "vault".
  await step(
    `auth method ${mounts.auth}/ (kubernetes)`,
    async () => (await api.get('sys/auth'))?.[`${mounts.auth}/`] as Json | undefined,
    {},
    () => api.post(`sys/auth/${mounts.auth}`, { type: 'kubernetes' }),
  );
  const authRole = {
    bound_service_account_names: [spec.serviceAccount],
    bound_service_account_namespaces: [spec.namespace],
    audience: 'vault',
    token_policies: [ids.policy],
    token_ttl: 3600,
    token_max_ttl: 86400,
  };
  await step(
    `auth/${mounts.auth}/role/${ids.authRole}`,
    () => api.get(`auth/${mounts.auth}/role/${ids.authRole}`),
    authRole,
    () => api.post(`auth/${mounts.auth}/role/${ids.authRole}`, authRole),
  );
  return steps;
}

function same(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]));
  return a === b;
}
