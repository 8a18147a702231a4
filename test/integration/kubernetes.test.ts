/**
 * Against a real kube-apiserver (test/support/kube-apiserver.ts): deploy/'s manifests are accepted
 * with strict field validation (a dry run), a misspelt field is refused, and Vault's kubernetes auth
 * method, configured against that API server, logs the sidecar in with a real projected
 * service-account token (TokenRequest, audience vault) — while a token for another audience is
 * refused.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { buildConfig } from '../../src/config/load.js';
import { injectYaml } from '../../src/kubernetes/inject.js';
import { Sidecar } from '../../src/sidecar.js';
import { waitFor } from '../support/cli.js';
import { type KubeApiServer, startKubeApiServer } from '../support/kube-apiserver.js';
import { capturingLogger } from '../support/logs.js';
import { startSidecar, stopAllSidecars, vaultSection } from '../support/sidecars.js';
import { vaultApi } from '../support/vault-api.js';
import { WORKLOADS } from '../support/workloads.js';

const vault = inject('vault');
const DEPLOY = path.resolve(import.meta.dirname, '../../deploy');
const K8S_MOUNT = 'kubernetes-apiserver-test';
const dir = mkdtempSync(path.join(tmpdir(), 'sidecar-kube-test-'));
let kube: KubeApiServer;

interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [field: string]: unknown;
}

/** The collection path an object is created in. */
function collection(object: KubeObject): string {
  const plural = `${object.kind.toLowerCase()}s`;
  const group = object.apiVersion.includes('/') ? `/apis/${object.apiVersion}` : `/api/${object.apiVersion}`;
  return `${group}/namespaces/${object.metadata.namespace ?? 'default'}/${plural}`;
}

const dryRunStrict = '?dryRun=All&fieldValidation=Strict';

type PodTemplated = KubeObject & { spec: { template: { spec: { initContainers: Record<string, unknown>[] } } } };

/** deploy/deployment.yaml's Deployment, freshly parsed. */
function exampleDeployment(): PodTemplated {
  return parseAllDocuments(readFileSync(path.join(DEPLOY, 'deployment.yaml'), 'utf8'))[0]?.toJS() as PodTemplated;
}

beforeAll(async () => {
  kube = await startKubeApiServer();
}, 90_000);

afterAll(async () => {
  await stopAllSidecars();
  await kube?.stop();
});

describe("deploy/'s manifests", () => {
  const manifests = readdirSync(DEPLOY).filter((f) => f.endsWith('.yaml'));

  it.each(manifests)('%s is accepted with strict field validation', async (file) => {
    const objects = parseAllDocuments(readFileSync(path.join(DEPLOY, file), 'utf8')).map((d) => d.toJS() as KubeObject);
    expect(objects.length).toBeGreaterThan(0);
    for (const object of objects) {
      const res = await kube.request<{ message?: string; spec?: unknown }>('POST', `${collection(object)}${dryRunStrict}`, object);
      expect({ file, kind: object.kind, status: res.status, message: res.body.message }).toEqual({
        file,
        kind: object.kind,
        status: 201,
        message: undefined,
      });
    }
  });

  it('runs the sidecar as a native sidecar that holds the app until /readyz', async () => {
    const deployment = exampleDeployment();
    const res = await kube.request<PodTemplated>('POST', `${collection(deployment)}${dryRunStrict}`, deployment);
    const [sidecar] = res.body.spec.template.spec.initContainers;
    expect(sidecar).toMatchObject({ name: 'mtls-sidecar', restartPolicy: 'Always', startupProbe: { httpGet: { path: '/readyz' } } });
  });

  it('refuses a misspelt field, naming it (the strict check can fail)', async () => {
    const deployment = exampleDeployment();
    const [sidecar] = deployment.spec.template.spec.initContainers;
    if (sidecar) sidecar.startupProbes = { httpGet: { path: '/readyz', port: 15000 } };
    const res = await kube.request<{ message: string }>('POST', `${collection(deployment)}${dryRunStrict}`, deployment);
    expect(res.status).toBe(400);
    expect(res.body.message).toMatch(/unknown field "spec.template.spec.initContainers\[0\].startupProbes"/);
  });
});

describe('inject output', () => {
  beforeAll(async () => {
    const ns = await kube.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    expect([201, 409]).toContain(ns.status);
    // Pods are admitted only with their service account in place.
    const sa = await kube.request('POST', '/api/v1/namespaces/shop/serviceaccounts', {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'orders' },
    });
    expect([201, 409]).toContain(sa.status);
  });

  it.each(Object.keys(WORKLOADS))('an injected %s is accepted with strict field validation', async (kind) => {
    const { text } = injectYaml(WORKLOADS[kind] as string, kind, { vaultAddr: 'https://vault.vault.svc:8200', image: 'example/sidecar:1' });
    const object = parse(text) as KubeObject;
    const res = await kube.request<{ message?: string }>('POST', `${collection(object)}${dryRunStrict}`, object);
    expect({ status: res.status, message: res.body.message }).toEqual({ status: 201, message: undefined });
  });
});

describe('kubernetes auth against the real API server', () => {
  /** A TokenRequest for the orders service account, as the kubelet makes for a projected volume. */
  async function projectedToken(audience: string): Promise<string> {
    const res = await kube.request<{ status: { token: string } }>('POST', '/api/v1/namespaces/default/serviceaccounts/orders/token', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { audiences: [audience], expirationSeconds: 3600 },
    });
    expect(res.status).toBe(201);
    return res.body.status.token;
  }

  beforeAll(async () => {
    const sa = await kube.request('POST', '/api/v1/namespaces/default/serviceaccounts', {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'orders' },
    });
    expect([201, 409]).toContain(sa.status);
    try {
      await vaultApi(vault, 'POST', `sys/auth/${K8S_MOUNT}`, { type: 'kubernetes' });
    } catch (err) {
      if (!/already in use/.test(String(err))) throw err;
    }
    await vaultApi(vault, 'POST', `auth/${K8S_MOUNT}/config`, {
      kubernetes_host: kube.url,
      kubernetes_ca_cert: kube.caPem,
      // Vault outside the cluster: it calls the TokenReview API with this reviewer's token.
      token_reviewer_jwt: kube.adminToken,
      disable_local_ca_jwt: true,
    });
    await vaultApi(vault, 'POST', `auth/${K8S_MOUNT}/role/orders`, {
      bound_service_account_names: ['orders'],
      bound_service_account_namespaces: ['default'],
      audience: 'vault',
      token_policies: ['sidecar'],
      token_ttl: '1h',
    });
  });

  it('logs in with a projected token for audience vault and gets a certificate', async () => {
    const tokenFile = path.join(dir, 'token');
    writeFileSync(tokenFile, await projectedToken('vault'));
    const sidecar = await startSidecar(
      {
        vault: { ...vaultSection(vault), auth: { method: 'kubernetes', mount: K8S_MOUNT, role: 'orders', tokenFile } },
        identity: { commonName: 'orders.test', dnsNames: ['orders.test'], ttl: '10m' },
        inbound: [{ name: 'app', listen: '127.0.0.1:0', target: '127.0.0.1:9' }],
      },
      {},
    );
    expect(sidecar.store.current()?.info.dnsNames).toEqual(['orders.test']);
  });

  it('is refused with a token for another audience, in Vault words', async () => {
    const tokenFile = path.join(dir, 'token-other');
    writeFileSync(tokenFile, await projectedToken('not-vault'));
    const config = buildConfig(
      {
        vault: { ...vaultSection(vault), auth: { method: 'kubernetes', mount: K8S_MOUNT, role: 'orders', tokenFile } },
        identity: { commonName: 'orders.test', dnsNames: ['orders.test'], ttl: '10m' },
        admin: { listen: '127.0.0.1:0' },
      },
      {},
    );
    const { logger, lines } = capturingLogger();
    const sidecar = await Sidecar.create(config, logger);
    const starting = sidecar.start();
    await waitFor(() => lines.some((l) => l.code === 'SIDECAR_VAULT_AUTH_FAILED'), 10_000, 'the login failure');
    const line = lines.find((l) => l.code === 'SIDECAR_VAULT_AUTH_FAILED') as { msg: string };
    expect(line.msg).toMatch(
      /vault: login with kubernetes role orders at auth\/kubernetes-apiserver-test failed \(.*\); check the auth role and credentials/,
    );
    expect(sidecar.notReadyReasons()).toContain('no valid certificate');
    await sidecar.stop(0);
    await starting;
  });
});
