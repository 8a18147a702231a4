/**
 * Issue 29, defect 6: deploy/ as a user applies it after `vault setup` (what docs/vault-setup.md
 * recommends). A private Vault dev server gets `vault-mtls-sidecar vault setup --service orders
 * --namespace default` through the built CLI; deploy/'s manifests are applied to the real
 * kube-apiserver (not a dry run); the sidecar configuration read back from the API server must name
 * the PKI mount, role and auth role that setup made, deploy/vault-policy.hcl must grant what setup's
 * policy grants, and a sidecar with that very configuration must log in with a projected token for
 * the Deployment's service account and get a certificate. deploy/configmap.yaml said `pki` while
 * setup makes `pki_int`: pods stayed Init:0/1 with "permission denied".
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { spawnCli } from '../support/cli.js';
import { type DevServer, startDevServer } from '../support/dev-server.js';
import { type KubeApiServer, startKubeApiServer } from '../support/kube-apiserver.js';
import { startSidecar, stopAllSidecars } from '../support/sidecars.js';
import { vaultApi } from '../support/vault-api.js';

const vault = inject('vault');
const DEPLOY = path.resolve(import.meta.dirname, '../../deploy');
/** What a user applies for the native-sidecar example (deployment-classic.yaml is the same Deployment for older clusters). */
const APPLIED = ['serviceaccount.yaml', 'configmap.yaml', 'deployment.yaml', 'service.yaml'];
let server: DevServer;
let kube: KubeApiServer;

interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [field: string]: unknown;
}

function collection(object: KubeObject): string {
  const kind = object.kind.toLowerCase();
  const plural = `${kind}s`;
  const group = object.apiVersion.includes('/') ? `/apis/${object.apiVersion}` : `/api/${object.apiVersion}`;
  return `${group}/namespaces/${object.metadata.namespace ?? 'default'}/${plural}`;
}

/** The `path "…"` stanzas of a Vault policy with their capabilities, comments ignored. */
function grants(hcl: string): string[] {
  const text = hcl.replace(/#.*$/gm, '');
  return [...text.matchAll(/path\s+"([^"]+)"\s*\{\s*capabilities\s*=\s*\[([^\]]*)\]\s*\}/g)]
    .map((m) => `${m[1]} ${(m[2] ?? '').replace(/\s+/g, '')}`)
    .sort();
}

beforeAll(async () => {
  [server, kube] = await Promise.all([startDevServer(vault.bin), startKubeApiServer()]);
}, 90_000);

afterAll(async () => {
  await stopAllSidecars();
  await Promise.all([server?.stop(), kube?.stop()]);
});

it('after `vault setup`, deploy/ names the mount, role, auth role and policy setup made, and its sidecar gets a certificate', async () => {
  const target = { address: server.address, rootToken: 'root' };
  const setup = spawnCli(['vault', 'setup', '--service', 'orders', '--namespace', 'default'], {
    VAULT_ADDR: server.address,
    VAULT_TOKEN: 'root',
  });
  expect(await setup.exited, setup.stderr()).toBe(0);

  for (const file of APPLIED) {
    for (const doc of parseAllDocuments(readFileSync(path.join(DEPLOY, file), 'utf8'))) {
      const object = doc.toJS() as KubeObject;
      const res = await kube.request('POST', `${collection(object)}?fieldValidation=Strict`, object);
      expect(res.status, `${file}: ${JSON.stringify(res.body)}`).toBe(201);
    }
  }

  // What the pod would read: the ConfigMap as stored, and the Deployment's service account and token audience.
  const cm = await kube.request<{ data: Record<string, string> }>('GET', '/api/v1/namespaces/default/configmaps/orders-sidecar');
  const raw = parse(cm.body.data['config.yaml'] ?? '') as Record<string, Record<string, unknown>>;
  const { pki, auth } = raw.vault as { pki: { mount: string; role: string }; auth: { method: string; role: string; mount?: string } };
  const authMount = auth.mount ?? 'kubernetes';
  const deployment = await kube.request<{ spec: { template: { spec: Record<string, unknown> } } }>(
    'GET',
    '/apis/apps/v1/namespaces/default/deployments/orders',
  );
  const podSpec = deployment.body.spec.template.spec as {
    serviceAccountName: string;
    volumes: { projected?: { sources: { serviceAccountToken?: { audience: string } }[] } }[];
  };
  const audience = podSpec.volumes.flatMap((v) => v.projected?.sources ?? []).find((s) => s.serviceAccountToken)
    ?.serviceAccountToken?.audience;

  // The names resolve in Vault to what setup made.
  await expect(vaultApi(target, 'GET', `${pki.mount}/roles/${pki.role}`)).resolves.toBeTruthy();
  const role = await vaultApi<{ data: { token_policies: string[]; bound_service_account_names: string[]; audience: string } }>(
    target,
    'GET',
    `auth/${authMount}/role/${auth.role}`,
  );
  expect(role.data.bound_service_account_names).toContain(podSpec.serviceAccountName);
  expect(role.data.audience).toBe(audience);
  const [policyName] = role.data.token_policies;
  const policy = await vaultApi<{ data: { policy: string } }>(target, 'GET', `sys/policies/acl/${policyName}`);
  expect(grants(policy.data.policy)).toContain(`${pki.mount}/sign/${pki.role} "update"`);
  // deploy/vault-policy.hcl, for those who write the policy by hand, grants the same.
  expect(grants(readFileSync(path.join(DEPLOY, 'vault-policy.hcl'), 'utf8'))).toEqual(grants(policy.data.policy));

  // And it works: that configuration, with a token projected as the Deployment's volume asks,
  // logs in and gets a certificate (only the addresses are local to the test).
  await vaultApi(target, 'POST', `auth/${authMount}/config`, {
    kubernetes_host: kube.url,
    kubernetes_ca_cert: kube.caPem,
    token_reviewer_jwt: kube.adminToken,
    disable_local_ca_jwt: true,
  });
  const token = await kube.request<{ status: { token: string } }>(
    'POST',
    `/api/v1/namespaces/default/serviceaccounts/${podSpec.serviceAccountName}/token`,
    { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { audiences: [audience], expirationSeconds: 3600 } },
  );
  expect(token.status).toBe(201);
  const tokenFile = path.join(mkdtempSync(path.join(tmpdir(), 'sidecar-deploy-setup-')), 'token');
  writeFileSync(tokenFile, token.body.status.token);
  const local = (listeners: unknown) =>
    (listeners as Record<string, unknown>[]).map((l) => ({ ...l, listen: '127.0.0.1:0', target: '127.0.0.1:9' }));
  const sidecar = await startSidecar(
    {
      ...raw,
      vault: { ...raw.vault, auth: { ...auth, tokenFile } },
      inbound: local(raw.inbound),
      outbound: local(raw.outbound),
      admin: { listen: '127.0.0.1:0' },
    },
    { VAULT_ADDR: server.address },
  );
  expect(sidecar.store.current()?.info.dnsNames).toContain('orders.default.svc');
}, 120_000);
