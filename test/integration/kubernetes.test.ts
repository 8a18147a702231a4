/**
 * Against a real kube-apiserver (test/support/kube-apiserver.ts): deploy/'s manifests are accepted
 * with strict field validation (a dry run), a misspelt field is refused, and Vault's kubernetes auth
 * method, configured against that API server, logs the sidecar in with a real projected
 * service-account token (TokenRequest, audience vault) — while a token for another audience is
 * refused.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { buildConfig } from '../../src/config/load.js';
import { injectYaml } from '../../src/kubernetes/inject.js';
import { Sidecar } from '../../src/sidecar.js';
import { vaultNames } from '../../src/vault/names.js';
import { serviceNames, setupService } from '../../src/vault/setup.js';
import { findOldNames } from '../../src/vault/setup-old-names.js';
import { loggedPort, type Spawned, spawnCli, waitFor } from '../support/cli.js';
import { type KubeApiServer, startKubeApiServer } from '../support/kube-apiserver.js';
import { capturingLogger } from '../support/logs.js';
import { TestPki } from '../support/pki.js';
import { preparedPath } from '../support/prepared.js';
import { parsePrometheus, sampleValue } from '../support/prometheus.js';
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

const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration']);

/** The collection path an object is created in. */
function collection(object: KubeObject): string {
  const kind = object.kind.toLowerCase();
  const plural = kind.endsWith('y') ? `${kind.slice(0, -1)}ies` : `${kind}s`;
  const group = object.apiVersion.includes('/') ? `/apis/${object.apiVersion}` : `/api/${object.apiVersion}`;
  if (CLUSTER_SCOPED.has(object.kind)) return `${group}/${plural}`;
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

describe('the Helm chart (deploy/chart)', () => {
  const chart = path.join(DEPLOY, 'chart');
  const caBundle = Buffer.from('-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n').toString('base64');
  // The API server's address, for the NetworkPolicy that lets only it call the webhook.
  const required = ['--set', `caBundle=${caBundle}`, '--set', 'networkPolicy.apiServerCIDRs={192.0.2.10/32}'];
  let helm = '';
  const run = (args: string[]) => {
    try {
      return { code: 0, out: execFileSync(helm, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString() };
    } catch (err) {
      const e = err as { status: number; stderr: Buffer; stdout: Buffer };
      return { code: e.status, out: `${e.stdout}${e.stderr}` };
    }
  };

  beforeAll(() => {
    helm = preparedPath('helm');
  });

  it('passes helm lint', () => {
    const lint = run(['lint', chart, '--strict', ...required]);
    expect(lint).toMatchObject({ code: 0 });
    expect(lint.out).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it('renders objects the API server accepts with strict field validation', async () => {
    const ns = await kube.request('POST', '/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'vault-mtls-sidecar' },
    });
    expect([201, 409]).toContain(ns.status);
    const rendered = run(['template', 'inject', chart, '--namespace', 'vault-mtls-sidecar', ...required]);
    expect(rendered.code).toBe(0);
    const objects = parseAllDocuments(rendered.out)
      .map((d) => d.toJS() as KubeObject | null)
      .filter((o): o is KubeObject => o !== null);
    expect(objects.map((o) => o.kind).sort()).toEqual([
      'ClusterRoleBinding',
      'ConfigMap',
      'Deployment',
      'MutatingWebhookConfiguration',
      'NetworkPolicy',
      'Service',
      'ServiceAccount',
    ]);
    for (const object of objects) {
      const res = await kube.request<{ message?: string }>('POST', `${collection(object)}${dryRunStrict}`, object);
      expect({ kind: object.kind, status: res.status, message: res.body.message }).toEqual({
        kind: object.kind,
        status: 201,
        message: undefined,
      });
    }
  });

  it('lets only the API server call the webhook, and refuses to render without its address', () => {
    const rendered = run(['template', 'inject', chart, '--namespace', 'vault-mtls-sidecar', ...required]);
    const policy = parseAllDocuments(rendered.out)
      .map((d) => d.toJS() as KubeObject | null)
      .find((o) => o?.kind === 'NetworkPolicy') as unknown as { spec: { ingress: { ports: { port: number }[]; from: unknown[] }[] } };
    expect(policy.spec.ingress).toEqual([{ ports: [{ port: 8443, protocol: 'TCP' }], from: [{ ipBlock: { cidr: '192.0.2.10/32' } }] }]);
    const without = run(['template', 'inject', chart, '--set', `caBundle=${caBundle}`]);
    expect(without.code).not.toBe(0);
    expect(without.out).toMatch(/networkPolicy\.apiServerCIDRs: list the addresses the API server calls the webhook from/);
    const off = run(['template', 'inject', chart, '--set', `caBundle=${caBundle}`, '--set', 'networkPolicy.enabled=false']);
    expect(off.code).toBe(0);
    expect(off.out).not.toMatch(/kind: NetworkPolicy/);
  });

  it('refuses to render without the CA bundle, saying what it is', () => {
    const rendered = run(['template', 'inject', chart, '--set', 'networkPolicy.apiServerCIDRs={192.0.2.10/32}']);
    expect(rendered.code).not.toBe(0);
    expect(rendered.out).toMatch(/caBundle: base64 of the CA that issues the webhook's certificate/);
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

describe('the admission webhook, registered with the API server', () => {
  let webhook: Spawned;
  let webhookPort = 0;
  let webhookCa = '';
  let webhookPki: TestPki;
  let servingFiles: { certFile: string; keyFile: string };

  beforeAll(async () => {
    // The webhook's serving certificate from a files identity (a Vault one works the same way).
    const pki = TestPki.create('webhook');
    const serving = pki.leaf('webhook', { cn: 'webhook', dns: ['localhost'], ips: ['127.0.0.1'] });
    webhookPki = pki;
    servingFiles = serving;
    const config = path.join(dir, 'webhook.yaml');
    writeFileSync(
      config,
      `identity: { source: files, files: { cert: ${serving.certFile}, key: ${serving.keyFile}, ca: ${pki.ca.certFile} } }\nadmin: { listen: "127.0.0.1:0" }\n`,
    );
    webhook = spawnCli(['webhook', '--config', config, '--listen', '127.0.0.1:0', '--pod-vault-addr', 'https://vault.vault.svc:8200']);
    const port = await loggedPort(webhook, 'webhook listener ready');
    webhookPort = port;
    webhookCa = pki.ca.cert;
    const registered = await kube.request('POST', '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: 'vault-mtls-sidecar' },
      webhooks: [
        {
          name: 'inject.vault-mtls-sidecar.io',
          clientConfig: { url: `https://127.0.0.1:${port}/mutate`, caBundle: Buffer.from(pki.ca.cert).toString('base64') },
          rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
          admissionReviewVersions: ['v1'],
          sideEffects: 'None',
          failurePolicy: 'Fail',
          timeoutSeconds: 5,
          namespaceSelector: { matchLabels: { 'vault-mtls-sidecar/webhook': 'enabled' } },
        },
      ],
    });
    expect(registered.status).toBe(201);
    const ns = await kube.request('POST', '/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'mesh', labels: { 'vault-mtls-sidecar/webhook': 'enabled' } },
    });
    expect(ns.status).toBe(201);
    const sa = await kube.request('POST', '/api/v1/namespaces/mesh/serviceaccounts', {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'orders' },
    });
    expect(sa.status).toBe(201);
    kube.startControllerManager();
  }, 60_000);

  afterAll(async () => {
    webhook?.child.kill('SIGTERM');
    await webhook?.exited;
  });

  const pod = (name: string, annotations: Record<string, string>) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, annotations },
    spec: { serviceAccountName: 'orders', containers: [{ name: 'app', image: 'example/orders:1.0' }] },
  });
  const annotated = { 'vault-mtls-sidecar/inject': 'true', 'vault-mtls-sidecar/role': 'orders', 'vault-mtls-sidecar/inbound': '8443:8080' };
  type StoredPod = {
    metadata: { labels?: Record<string, string> };
    spec: { initContainers?: { name: string; restartPolicy?: string; env?: { name: string; value: string }[] }[] };
  };

  it('stores an annotated bare Pod with the sidecar as a native sidecar', async () => {
    const res = await kube.request<StoredPod>('POST', '/api/v1/namespaces/mesh/pods', pod('bare', annotated));
    expect(res.status).toBe(201);
    const [sidecar] = res.body.spec.initContainers ?? [];
    expect(sidecar).toMatchObject({ name: 'mtls-sidecar', restartPolicy: 'Always' });
    expect(sidecar?.env?.find((e) => e.name === 'VAULT_ADDR')?.value).toBe('https://vault.vault.svc:8200');
    expect(res.body.metadata.labels).toEqual({ 'vault-mtls-sidecar/injected': 'true' });
  });

  it('leaves an unannotated Pod untouched', async () => {
    const res = await kube.request<StoredPod>('POST', '/api/v1/namespaces/mesh/pods', pod('plain', {}));
    expect(res.status).toBe(201);
    expect(res.body.spec.initContainers).toBeUndefined();
    expect(res.body.metadata.labels).toBeUndefined();
  });

  it('refuses a Pod with a malformed annotation, naming it', async () => {
    const res = await kube.request<{ message: string }>(
      'POST',
      '/api/v1/namespaces/mesh/pods',
      pod('bad', { ...annotated, 'vault-mtls-sidecar/inbound': '8443' }),
    );
    expect(res.status).toBe(400);
    expect(res.body.message).toMatch(
      /admission webhook "inject.vault-mtls-sidecar.io" denied the request: Pod mesh\/bad: annotation vault-mtls-sidecar\/inbound: "8443" is not PORT:APP_PORT/,
    );
  });

  it('answers garbage with 400, other paths with 404, a flood of bytes with 413, and keeps serving', async () => {
    const call = (urlPath: string, body: string | Buffer) =>
      new Promise<number | string>((resolve) => {
        const req = https.request(
          { host: '127.0.0.1', port: webhookPort, path: urlPath, method: 'POST', ca: webhookCa, servername: 'localhost' },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
        req.end(body);
      });
    expect(await call('/mutate', 'not json')).toBe(400);
    expect(await call('/mutate', JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', request: { uid: 'x' } }))).toBe(400);
    expect(await call('/other', '{}')).toBe(404);
    expect([413, 'ECONNRESET', 'EPIPE']).toContain(await call('/mutate', Buffer.alloc(4 * 1024 * 1024, 97)));
    const res = await kube.request<StoredPod>('POST', '/api/v1/namespaces/mesh/pods', pod('after-garbage', annotated));
    expect(res.body.spec.initContainers?.map((c) => c.name)).toEqual(['mtls-sidecar']);
    expect(webhook.child.exitCode).toBeNull();
  });

  it('cuts a silent peer and one that stops mid-request, and keeps serving meanwhile', async () => {
    const closed = (socket: net.Socket) =>
      new Promise<number>((resolve) => {
        const start = Date.now();
        socket.on('error', () => {});
        socket.on('close', () => resolve(Date.now() - start));
        socket.resume(); // read what comes (a 408), so the close is seen
      });
    const silent = net.connect({ host: '127.0.0.1', port: webhookPort }); // never says ClientHello
    const halfway = tls.connect({ host: '127.0.0.1', port: webhookPort, ca: webhookCa, servername: 'localhost' }, () =>
      halfway.write('POST /mutate HTTP/1.1\r\nHost: webhook\r\nContent-Length: 1000\r\n\r\n{"apiVersion"'),
    );
    const silentClosed = closed(silent);
    const halfwayClosed = closed(halfway);
    const res = await kube.request<StoredPod>('POST', '/api/v1/namespaces/mesh/pods', pod('beside-silent', annotated));
    expect(res.body.spec.initContainers?.map((c) => c.name)).toEqual(['mtls-sidecar']);
    // Cut by the webhook (5 s limits), not left open until the peer gives up.
    expect(await silentClosed).toBeLessThan(9000);
    expect(await halfwayClosed).toBeLessThan(9000);
    expect(webhook.child.exitCode).toBeNull();
  }, 20_000);

  it('serves a renewed certificate without a restart, and the API server keeps calling it', async () => {
    const servedSerial = () =>
      new Promise<string>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port: webhookPort, ca: webhookCa, servername: 'localhost' }, () => {
          resolve(socket.getPeerCertificate().serialNumber);
          socket.destroy();
        });
        socket.on('error', reject);
      });
    const before = await servedSerial();
    const renewed = webhookPki.leaf('webhook-renewed', { cn: 'webhook', dns: ['localhost'], ips: ['127.0.0.1'] });
    writeFileSync(servingFiles.keyFile, readFileSync(renewed.keyFile));
    writeFileSync(servingFiles.certFile, readFileSync(renewed.certFile));
    await waitFor(async () => (await servedSerial()) !== before, 20_000, 'the webhook to serve the renewed certificate');
    const res = await kube.request<StoredPod>('POST', '/api/v1/namespaces/mesh/pods', pod('after-renewal', annotated));
    expect(res.body.spec.initContainers?.map((c) => c.name)).toEqual(['mtls-sidecar']);
    expect(webhook.child.exitCode).toBeNull();
  });

  it('gets the sidecar into the Pods the controller manager makes for an annotated Deployment', async () => {
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'orders' },
      spec: {
        selector: { matchLabels: { app: 'orders' } },
        template: { metadata: { labels: { app: 'orders' }, annotations: annotated }, spec: pod('x', {}).spec },
      },
    };
    expect((await kube.request('POST', '/apis/apps/v1/namespaces/mesh/deployments', deployment)).status).toBe(201);
    let pods: StoredPod[] = [];
    await waitFor(
      async () => {
        const res = await kube.request<{ items: StoredPod[] }>('GET', '/api/v1/namespaces/mesh/pods?labelSelector=app%3Dorders');
        pods = res.body.items ?? [];
        return pods.length > 0;
      },
      30_000,
      'a Pod from the Deployment (kube-controller-manager)',
    );
    expect(pods[0]?.spec.initContainers?.map((c) => [c.name, c.restartPolicy])).toEqual([['mtls-sidecar', 'Always']]);
    expect(pods[0]?.metadata.labels).toMatchObject({ app: 'orders', 'vault-mtls-sidecar/injected': 'true' });
  });
});

describe('kubernetes auth against the real API server', () => {
  /**
   * A TokenRequest for a service account, as the kubelet makes for a projected volume; `boundTo` a
   * Secret, the token stops being valid when the Secret is deleted (as a pod-bound one does when
   * its pod goes).
   */
  async function projectedToken(
    audience: string,
    namespace = 'default',
    account = 'orders',
    boundTo?: { name: string; uid: string },
  ): Promise<string> {
    const res = await kube.request<{ status: { token: string } }>(
      'POST',
      `/api/v1/namespaces/${namespace}/serviceaccounts/${account}/token`,
      {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: {
          audiences: [audience],
          expirationSeconds: 3600,
          ...(boundTo ? { boundObjectRef: { kind: 'Secret', apiVersion: 'v1', ...boundTo } } : {}),
        },
      },
    );
    expect(res.status).toBe(201);
    return res.body.status.token;
  }

  async function secret(name: string): Promise<{ name: string; uid: string }> {
    const res = await kube.request<{ metadata: { uid: string } }>('POST', '/api/v1/namespaces/default/secrets', {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name },
    });
    expect(res.status).toBe(201);
    return { name, uid: res.body.metadata.uid };
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
    const stranger = await kube.request('POST', '/api/v1/namespaces/default/serviceaccounts', {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'stranger' },
    });
    expect([201, 409]).toContain(stranger.status);
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

  it('re-reads the token file at the next login, after the kubelet rotated it', async () => {
    const tokenFile = path.join(dir, 'token-rotating');
    const firstPod = await secret('first-pod');
    const first = await projectedToken('vault', 'default', 'orders', firstPod);
    writeFileSync(tokenFile, first);
    const sidecar = await startSidecar({
      vault: { ...vaultSection(vault), auth: { method: 'kubernetes', mount: K8S_MOUNT, role: 'orders', tokenFile } },
      identity: { commonName: 'orders.test', dnsNames: ['orders.test'], ttl: '10m' },
    });
    // The first token dies with the object it was bound to; the kubelet has written a new one.
    expect((await kube.request('DELETE', `/api/v1/namespaces/default/secrets/${firstPod.name}`)).status).toBe(200);
    // So only a re-read file can log in from now on.
    await waitFor(
      async () => {
        const review = await kube.request<{ status: { authenticated?: boolean } }>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenReview',
          spec: { token: first, audiences: ['vault'] },
        });
        return review.body.status.authenticated !== true;
      },
      15_000,
      'the API server to refuse the token bound to the deleted Secret',
    );
    writeFileSync(tokenFile, await projectedToken('vault', 'default', 'orders', await secret('second-pod')));
    // Vault's token is revoked, so the next call must log in again, with the new file content.
    await vaultApi(vault, 'PUT', `sys/leases/revoke-prefix/auth/${K8S_MOUNT}/login`);
    const serial = sidecar.store.current()?.info.serial;
    sidecar.renewer.renewNow();
    await waitFor(() => sidecar.store.current()?.info.serial !== serial, 10_000, 'the renewal after re-login with the rotated token');
    const samples = parsePrometheus(await sidecar.metrics.text());
    expect(sampleValue(samples, 'sidecar_vault_request_duration_seconds_count', { operation: 'login', status: '200' })).toBe(2);
  });

  /** Starts a sidecar that logs in with `token`, and returns the login failure it logs; it must stay not ready. */
  async function refusedLogin(token: string, file: string): Promise<string> {
    const tokenFile = path.join(dir, file);
    writeFileSync(tokenFile, token);
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
    expect(sidecar.notReadyReasons()).toContain('no valid certificate');
    await sidecar.stop(0);
    await starting;
    return (lines.find((l) => l.code === 'SIDECAR_VAULT_AUTH_FAILED') as { msg: string }).msg;
  }

  it('names the role and the mount when the service account is not allowed, and stays not ready', async () => {
    expect(await refusedLogin(await projectedToken('vault', 'default', 'stranger'), 'token-stranger')).toMatch(
      /vault: login with kubernetes role orders at auth\/kubernetes-apiserver-test failed \(.*service account name not authorized.*\); check the auth role and credentials/,
    );
  });

  it('is refused with a token for another audience, in Vault words', async () => {
    expect(await refusedLogin(await projectedToken('not-vault'), 'token-other')).toMatch(
      /vault: login with kubernetes role orders at auth\/kubernetes-apiserver-test failed \(.*invalid audience \(aud\) claim.*\); check the auth role and credentials/,
    );
  });

  it('gives orders in shop and orders in dev, set up by `vault setup`, each a login and certificates with only its own names', async () => {
    const mounts = { root: 'pki-setup-root', intermediate: 'pki-setup-int', auth: 'kubernetes-setup' };
    const base = { name: 'orders', serviceAccount: 'orders', ttl: 3600, maxTtl: 86400, keyType: 'ec' as const, issue: false };
    const specs = [
      { ...base, namespace: 'shop' },
      { ...base, namespace: 'dev' },
    ];
    for (const ns of ['shop', 'dev']) {
      const created = await kube.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
      expect([201, 409]).toContain(created.status);
      const sa = await kube.request('POST', `/api/v1/namespaces/${ns}/serviceaccounts`, {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: { name: 'orders' },
      });
      expect([201, 409]).toContain(sa.status);
    }
    const admin = { address: vault.address, token: vault.rootToken };
    // dev after shop: before names were per namespace, this rebound shop's roles to dev.
    for (const spec of specs) await setupService(admin, spec, mounts, false);
    for (const spec of specs) {
      expect((await setupService(admin, spec, mounts, false)).filter((s) => s.action !== 'unchanged')).toEqual([]);
      expect(await findOldNames(admin, spec, mounts)).toEqual([]);
    }
    // Where the API server is: the one thing `vault setup` leaves to the operator.
    await vaultApi(vault, 'POST', `auth/${mounts.auth}/config`, {
      kubernetes_host: kube.url,
      kubernetes_ca_cert: kube.caPem,
      token_reviewer_jwt: kube.adminToken,
      disable_local_ca_jwt: true,
    });
    const jwts: Record<string, string> = {};
    for (const spec of specs) {
      const ids = vaultNames(spec.name, spec.namespace);
      const tokenFile = path.join(dir, `token-setup-${spec.namespace}`);
      jwts[spec.namespace] = await projectedToken('vault', spec.namespace);
      writeFileSync(tokenFile, jwts[spec.namespace] ?? '');
      const names = serviceNames(spec);
      const sidecar = await startSidecar(
        {
          vault: {
            ...vaultSection(vault),
            pki: { mount: mounts.intermediate, role: ids.pkiRole },
            auth: { method: 'kubernetes', mount: mounts.auth, role: ids.authRole, tokenFile },
          },
          identity: { commonName: `orders.${spec.namespace}.svc`, dnsNames: names.dnsNames, uriSans: [names.spiffeId], ttl: '10m' },
          inbound: [{ name: 'app', listen: '127.0.0.1:0', target: '127.0.0.1:9' }],
        },
        {},
      );
      expect(sidecar.store.current()?.info).toMatchObject({ dnsNames: names.dnsNames, uris: [names.spiffeId] });
    }

    // Neither can use the other's: dev's service account cannot log in with shop's role, and dev's
    // token cannot have shop's role sign; shop's role does not sign dev's names.
    const login = (role: string, jwt: string) => vaultApi(vault, 'POST', `auth/${mounts.auth}/login`, { role, jwt }, '');
    await expect(login('orders.shop', jwts.dev ?? '')).rejects.toThrow(/namespace not authorized|permission denied/);
    const devToken = ((await login('orders.dev', jwts.dev ?? '')) as { auth: { client_token: string } }).auth.client_token;
    await expect(vaultApi(vault, 'POST', `${mounts.intermediate}/sign/orders.shop`, { csr: 'x' }, devToken)).rejects.toThrow(
      /permission denied/,
    );
    await expect(
      vaultApi(vault, 'POST', `${mounts.intermediate}/issue/orders.shop`, { common_name: 'orders.dev.svc', alt_names: 'orders.dev' }),
    ).rejects.toThrow(/not allowed by this role/);
  });
});
