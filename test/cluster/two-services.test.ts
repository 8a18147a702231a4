/**
 * The product in pods on a real kubelet (test/support/kube-node.ts): the admission webhook runs as
 * a pod from the product image and injects annotated Deployments `orders` and `payments`; their
 * sidecars log in to Vault with the tokens the kubelet projects (audience vault, roles from
 * `vault-mtls-sidecar vault setup`), and orders' app reaches payments' app through both sidecars.
 *
 * No cluster DNS or kube-proxy in a one-node test cluster: orders reaches `payments.shop.svc`
 * through hostAliases pointing at the payments pod's IP. The webhook pod uses the host's network,
 * so the API server (on the host) calls it at an address its certificate names before it starts.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnCli, waitFor } from '../support/cli.js';
import { processFacts, productImage } from '../support/image.js';
import { hostState, type KubeNode, startKubeNode } from '../support/kube-node.js';
import { TestPki } from '../support/pki.js';
import { containerPid, curlInPod, execInContainer, isReady, type Pod, podEvents, status, waitForPod } from '../support/pods.js';
import { freePort } from '../support/ports.js';
import { preparedPath } from '../support/prepared.js';
import { vaultApi } from '../support/vault-api.js';
import { type PersistentVault, startPersistentVault } from '../support/vault-persistent.js';

const image = productImage();
const NS = 'shop';
const WEBHOOK_NS = 'vault-mtls-sidecar';
let node: KubeNode;
let vault: PersistentVault;
let payments: Pod;
let orders: Pod;
let hostBefore: Awaited<ReturnType<typeof hostState>>;

/**
 * payments' app: answers with who called, as its sidecar told it (XFCC), after ?delay= ms; on
 * SIGTERM it finishes the requests it has, then exits.
 */
const PAYMENTS_APP = `
const server = require('node:http').createServer((req, res) => {
  const delay = Number(new URL(req.url, 'http://x').searchParams.get('delay') ?? 0);
  if (delay > 0) console.log('app: got ' + req.url);
  setTimeout(() => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ app: 'payments', path: req.url, caller: req.headers['x-forwarded-client-cert'] ?? null }));
  }, delay);
}).listen(8080, '127.0.0.1');
process.on('SIGTERM', () => {
  console.log('app: SIGTERM, finishing what it has');
  server.close(() => {
    console.log('app: exiting');
    process.exit(0);
  });
});
`;

/**
 * orders' app: calls payments through its sidecar's outbound port once at start (the native
 * sidecar must be ready before the app runs, so this first call must succeed), on GET /call (with
 * payments' ?delay=), and in a loop between GET /loop/start and GET /loop/stop (counting what
 * failed; /loop/mark?as= notes how many calls were made so far, /loop/status reports). Every other
 * call of the loop opens a new connection to the sidecar instead of a pooled one.
 */
const ORDERS_APP = `
const http = require('node:http');
const call = (delay = 0) => fetch('http://127.0.0.1:9001/pay?delay=' + delay).then(
  async (r) => ({ status: r.status, body: await r.json() }),
  (e) => ({ error: String(e.cause?.code ?? e.message) }),
);
const freshCall = () => new Promise((resolve) => {
  const req = http.get({ host: '127.0.0.1', port: 9001, path: '/pay', agent: false, headers: { connection: 'close' } }, (r) => {
    r.resume();
    r.on('end', () => resolve({ status: r.statusCode }));
  });
  req.on('error', (e) => resolve({ error: String(e.code ?? e.message) }));
});
const first = call();
let loop = null;
const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  let out;
  if (url.pathname === '/first') out = await first;
  else if (url.pathname === '/loop/start') {
    loop = { ok: 0, calls: 0, failed: [], marks: {}, stop: false };
    const l = loop;
    l.done = (async () => {
      while (!l.stop) {
        const r = await (l.calls % 2 ? freshCall() : call());
        l.calls++;
        if (r.status === 200) l.ok++; else l.failed.push(r.error ?? r.status);
      }
    })();
    out = { started: true };
  } else if (url.pathname === '/loop/mark') {
    loop.marks[url.searchParams.get('as')] = loop.calls;
    out = { calls: loop.calls };
  } else if (url.pathname === '/loop/status') out = { calls: loop.calls };
  else if (url.pathname === '/loop/stop') {
    loop.stop = true;
    await loop.done;
    out = { ok: loop.ok, calls: loop.calls, failed: loop.failed, marks: loop.marks };
  } else out = await call(Number(url.searchParams.get('delay') ?? 0));
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(out));
}).listen(8080, '127.0.0.1');
process.on('SIGTERM', () => {
  console.log('app: SIGTERM, finishing what it has');
  server.close(() => {
    console.log('app: exiting');
    process.exit(0);
  });
});
`;

const restricted = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  runAsUser: 1000,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

/**
 * GET from orders' app inside its pod. The app container counts as ready once it runs (it binds
 * only 127.0.0.1, so the kubelet cannot probe it): wait until node has bound its port.
 */
async function ordersApp(urlPath: string, maxSeconds = 10): Promise<{ status: number; body: string }> {
  const pid = await containerPid(node, orders, 'app');
  let answer = { status: 0, body: '' };
  await waitFor(
    async () => {
      answer = await curlInPod(pid, 8080, urlPath, { maxSeconds });
      return answer.status !== 0;
    },
    30_000,
    `orders' app to answer ${urlPath}`,
  );
  return answer;
}

/** The RFC 3339 (nanosecond) time the kubelet logged for the first line of `log` containing `text`. */
function loggedAt(log: string, text: string): string {
  const line = log.split('\n').find((l) => l.includes(text));
  if (!line) throw new Error(`no log line with ${text} in:\n${log.slice(-2000)}`);
  return line.split(' ')[0] ?? '';
}

async function create(apiPath: string, body: Record<string, unknown>): Promise<void> {
  const res = await node.kube.request('POST', apiPath, body);
  if (res.status !== 201) throw new Error(`POST ${apiPath}: ${res.status} ${JSON.stringify(res.body)}`);
}

function appDeployment(name: string, script: string, annotations: Record<string, string>, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NS },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: {
          labels: { app: name },
          annotations: { 'vault-mtls-sidecar/inject': 'true', 'vault-mtls-sidecar/role': name, ...annotations },
        },
        spec: {
          serviceAccountName: name,
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: 10,
          ...extra,
          containers: [
            {
              name: 'app',
              image: image.name,
              imagePullPolicy: 'Never',
              command: ['node', '-e', script],
              securityContext: restricted,
            },
          ],
        },
      },
    },
  };
}

async function startWebhook(): Promise<void> {
  const pki = TestPki.create('webhook-pod');
  const serving = pki.leaf('webhook', { cn: 'webhook', dns: ['localhost'], ips: ['127.0.0.1'] });
  const [listenPort, adminPort] = [await freePort(), await freePort()];
  await create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: WEBHOOK_NS } });
  await create(`/api/v1/namespaces/${WEBHOOK_NS}/secrets`, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'webhook' },
    stringData: {
      'tls.crt': serving.cert,
      'tls.key': serving.key,
      'ca.crt': pki.ca.cert,
      'webhook.yaml': `identity: { source: files, files: { cert: /etc/webhook/tls.crt, key: /etc/webhook/tls.key, ca: /etc/webhook/ca.crt } }\nadmin: { listen: "127.0.0.1:${adminPort}" }\n`,
    },
  });
  await create(`/apis/apps/v1/namespaces/${WEBHOOK_NS}/deployments`, {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'webhook', namespace: WEBHOOK_NS },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'webhook' } },
      template: {
        metadata: { labels: { app: 'webhook' } },
        spec: {
          hostNetwork: true,
          automountServiceAccountToken: false,
          securityContext: { fsGroup: 1000 },
          containers: [
            {
              name: 'webhook',
              image: image.name,
              imagePullPolicy: 'Never',
              args: [
                'webhook',
                '--config',
                '/etc/webhook/webhook.yaml',
                '--listen',
                `127.0.0.1:${listenPort}`,
                '--pod-vault-addr',
                vault.address,
                '--image',
                image.name,
              ],
              readinessProbe: { httpGet: { host: '127.0.0.1', path: '/readyz', port: adminPort }, periodSeconds: 1 },
              securityContext: restricted,
              volumeMounts: [{ name: 'config', mountPath: '/etc/webhook', readOnly: true }],
            },
          ],
          volumes: [{ name: 'config', secret: { secretName: 'webhook', defaultMode: 0o440 } }],
        },
      },
    },
  });
  await waitForPod(node, WEBHOOK_NS, 'app=webhook', isReady, 'the webhook pod to be ready');
  await create('/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: 'vault-mtls-sidecar' },
    webhooks: [
      {
        name: 'inject.vault-mtls-sidecar.io',
        clientConfig: { url: `https://127.0.0.1:${listenPort}/mutate`, caBundle: Buffer.from(pki.ca.cert).toString('base64') },
        rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        failurePolicy: 'Fail',
        timeoutSeconds: 5,
        namespaceSelector: { matchLabels: { 'vault-mtls-sidecar/webhook': 'enabled' } },
      },
    ],
  });
}

async function setUpVault(): Promise<void> {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'sidecar-cluster-')), 'services.yaml');
  writeFileSync(
    file,
    `- { name: orders, namespace: ${NS} }\n- { name: payments, namespace: ${NS} }\n- { name: batch, namespace: ${NS} }\n`,
  );
  const setup = spawnCli(['vault', 'setup', '--file', file], { VAULT_ADDR: vault.address, VAULT_TOKEN: vault.rootToken });
  if ((await setup.exited) !== 0) throw new Error(`vault setup failed: ${setup.stderr()}`);
  // Vault outside the cluster: it calls the TokenReview API with a reviewer token of its own.
  await vaultApi({ address: vault.address, rootToken: vault.rootToken }, 'POST', 'auth/kubernetes/config', {
    kubernetes_host: node.kube.url,
    kubernetes_ca_cert: node.kube.caPem,
    token_reviewer_jwt: node.kube.adminToken,
    disable_local_ca_jwt: true,
  });
}

beforeAll(async () => {
  hostBefore = await hostState();
  node = await startKubeNode();
  try {
    await node.importImage(image.archive);
    node.kube.startControllerManager(['deployment', 'replicaset', 'serviceaccount', 'job']);
    // Vault on the bridge's address: the sidecars in the pods reach it there. A server with raft
    // storage, as production runs it: it comes back from a restart with its roles and tokens.
    vault = await startPersistentVault(process.env.BAO_BIN ?? preparedPath('openbao'), { host: node.gateway });
    await setUpVault();
    await startWebhook();
    await create('/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: NS, labels: { 'vault-mtls-sidecar/webhook': 'enabled' } },
    });
    for (const sa of ['orders', 'payments', 'batch']) {
      await create(`/api/v1/namespaces/${NS}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa } });
    }
    await create(
      `/apis/apps/v1/namespaces/${NS}/deployments`,
      appDeployment('payments', PAYMENTS_APP, { 'vault-mtls-sidecar/inbound': '8443:8080' }),
    );
    payments = await waitForPod(node, NS, 'app=payments', isReady, 'payments to be ready');
    const paymentsIp = payments.status.podIP ?? '';
    await create(
      `/apis/apps/v1/namespaces/${NS}/deployments`,
      appDeployment(
        'orders',
        ORDERS_APP,
        { 'vault-mtls-sidecar/inbound': '8443:8080', 'vault-mtls-sidecar/outbound': `9001=payments.${NS}.svc:8443` },
        { hostAliases: [{ ip: paymentsIp, hostnames: [`payments.${NS}.svc`] }] },
      ),
    );
    orders = await waitForPod(node, NS, 'app=orders', isReady, 'orders to be ready');
  } catch (err) {
    await node.stop();
    await vault?.stop();
    throw err;
  }
}, 600_000);

afterAll(async () => {
  await node?.stop();
  await vault?.stop();
  // The node leaves the host's kernel settings and iptables as it found them.
  expect(await hostState()).toEqual(hostBefore);
}, 120_000);

describe('two services through their sidecars, in pods on a kubelet', () => {
  it('the webhook injected the native sidecar, which logged in with the projected token and got its certificate', async () => {
    for (const pod of [orders, payments]) {
      const sidecar = status(pod, 'mtls-sidecar');
      expect(sidecar?.ready).toBe(true);
      expect(sidecar?.restartCount).toBe(0);
      expect(status(pod, 'app')?.state.running).toBeDefined();
    }
    const events = await podEvents(node.kube, orders);
    console.log(`events of ${orders.metadata.name}:\n${events.map((e) => `  ${e.type} ${e.reason}: ${e.message}`).join('\n')}`);
  });

  it("orders' app reaches payments' app through both sidecars, and payments sees orders' SPIFFE ID", async () => {
    // The app's first call, made as it started: the sidecar was ready before the app ran.
    const first = await ordersApp('/first');
    expect(first.status).toBe(200);
    expect(JSON.parse(first.body)).toMatchObject({ status: 200, body: { app: 'payments', path: '/pay?delay=0' } });
    const call = await ordersApp('/call');
    const reply = JSON.parse(call.body) as { status: number; body: { caller: string } };
    expect(reply.status).toBe(200);
    expect(reply.body.caller).toContain(`URI=spiffe://cluster.local/ns/${NS}/sa/orders`);
  });

  it("refuses a client without a certificate at payments' inbound port, and still serves orders", async () => {
    const refused = await new Promise<string>((resolve) => {
      const socket = tls.connect({ host: payments.status.podIP, port: 8443, rejectUnauthorized: false }, () => {
        socket.write('GET /pay HTTP/1.1\r\nHost: payments\r\n\r\n');
      });
      let got = '';
      socket.on('data', (c: Buffer) => {
        got += c.toString();
      });
      socket.on('error', (err) => resolve(`error: ${(err as { code?: string }).code ?? ''} ${err.message}`));
      socket.on('close', () => resolve(got === '' ? 'closed' : got));
    });
    // Refused by the TLS handshake (TLS 1.3: the server's certificate_required alert), not by a
    // closed port or an HTTP answer.
    expect(refused).toMatch(/^error: ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED /);
    expect(refused).not.toContain('payments');
    expect(JSON.parse((await ordersApp('/call')).body)).toMatchObject({ status: 200 });
  });

  it('runs the sidecar as uid 1000 with no capabilities on a read-only root, and doctor in the pod reports ✓', async () => {
    const facts = processFacts(await containerPid(node, payments, 'mtls-sidecar'));
    expect(facts.uid.split(/\s+/)).toEqual(['1000', '1000', '1000', '1000']);
    expect(facts.capEff).toBe('0000000000000000');
    expect(facts.noNewPrivs).toBe('1');
    expect(facts.rootMountOptions.split(',')[0]).toBe('ro');
    expect(facts.cmdline).toEqual(expect.arrayContaining(['--max-semi-space-size=4', '--heap-growing-percent=50']));
    const doctor = await execInContainer(node, payments, 'mtls-sidecar', ['/app/dist/main.js', 'doctor']);
    expect(doctor.out).toContain('✓');
    expect(doctor.code).toBe(0);
  });
});

describe('rotation and restarts', () => {
  it('rotates both certificates under a steady request loop from orders without failing a request', async () => {
    const paymentsSidecar = await containerPid(node, payments, 'mtls-sidecar');
    const ordersSidecar = await containerPid(node, orders, 'mtls-sidecar');
    const serial = async (pid: number) => (JSON.parse((await curlInPod(pid, 15000, '/certs')).body) as { serial: string }).serial;
    const calls = async () => (JSON.parse((await ordersApp('/loop/status')).body) as { calls: number }).calls;
    const mark = async (as: string) => (JSON.parse((await ordersApp(`/loop/mark?as=${as}`)).body) as { calls: number }).calls;
    const [paymentsBefore, ordersBefore] = [await serial(paymentsSidecar), await serial(ordersSidecar)];
    await ordersApp('/loop/start');
    await waitFor(async () => (await calls()) >= 20, 60_000, 'the loop to make 20 calls');
    // payments' (the server's) certificate: new handshakes get the new one.
    await mark('paymentsRotate');
    expect((await curlInPod(paymentsSidecar, 15000, '/rotate', { method: 'POST' })).status).toBe(202);
    await waitFor(
      async () => (await serial(paymentsSidecar)) !== paymentsBefore,
      30_000,
      "payments' sidecar to serve the rotated certificate",
    );
    // orders' (the client's) certificate: its sidecar starts a new pool, so every call from here
    // on opens new mTLS connections to payments, which now presents its new certificate.
    const afterPayments = await mark('ordersRotate');
    expect((await curlInPod(ordersSidecar, 15000, '/rotate', { method: 'POST' })).status).toBe(202);
    await waitFor(async () => (await serial(ordersSidecar)) !== ordersBefore, 30_000, "orders' sidecar to use the rotated certificate");
    const afterOrders = await mark('ordersRotated');
    await waitFor(async () => (await calls()) >= afterOrders + 20, 60_000, 'the loop to make 20 calls after both rotations');
    const result = JSON.parse((await ordersApp('/loop/stop', 60)).body) as {
      ok: number;
      calls: number;
      failed: unknown[];
      marks: Record<string, number>;
    };
    expect(result.failed).toEqual([]);
    expect(result.ok).toBe(result.calls);
    // Calls were made across both rotations, not only before them.
    expect(afterPayments).toBeGreaterThan(result.marks.paymentsRotate ?? Number.POSITIVE_INFINITY);
    expect(result.calls).toBeGreaterThanOrEqual(afterOrders + 20);
    console.log(`rotation loop: ${result.calls} calls, marks ${JSON.stringify(result.marks)}`);
  }, 180_000);

  it("drains when its sidecar gets SIGTERM: a request in flight through payments' sidecar completes, and the kubelet restarts it", async () => {
    const slow = ordersApp('/call?delay=3000', 30);
    // The request has reached payments' app (through its sidecar) before the sidecar is signalled.
    await waitFor(
      () => node.containerLog(payments, 'app').includes('app: got /pay?delay=3000'),
      30_000,
      "payments' app to get the slow request",
    );
    const id = status(payments, 'mtls-sidecar')?.containerID?.replace(/^containerd:\/\//, '') ?? '';
    await node.ctr(['tasks', 'kill', '--signal', 'SIGTERM', id]);
    expect(JSON.parse((await slow).body)).toMatchObject({ status: 200, body: { app: 'payments', path: '/pay?delay=3000' } });
    payments = await waitForPod(
      node,
      NS,
      'app=payments',
      (p) => isReady(p) && (status(p, 'mtls-sidecar')?.restartCount ?? 0) >= 1,
      "payments' sidecar to be restarted and ready",
    );
    // It exited by itself, cleanly, after draining (not killed at the end of a grace period).
    expect(status(payments, 'mtls-sidecar')?.lastState?.terminated?.exitCode).toBe(0);
    expect(node.containerLog(payments, 'mtls-sidecar')).toContain('"msg":"draining"');
    expect(JSON.parse((await ordersApp('/call')).body)).toMatchObject({ status: 200 });
  }, 120_000);

  it('fails no request while Vault restarts under a steady request loop, and renews once it is back', async () => {
    const paymentsSidecar = await containerPid(node, payments, 'mtls-sidecar');
    const serial = async () => (JSON.parse((await curlInPod(paymentsSidecar, 15000, '/certs')).body) as { serial: string }).serial;
    const calls = async () => (JSON.parse((await ordersApp('/loop/status')).body) as { calls: number }).calls;
    const before = await serial();
    await ordersApp('/loop/start');
    await waitFor(async () => (await calls()) >= 20, 60_000, 'the loop to make 20 calls');
    const down = await calls();
    await vault.stopNode(0);
    // Calls go on while Vault is away: the certificates in hand are still good.
    await waitFor(async () => (await calls()) >= down + 20, 60_000, 'the loop to make 20 calls while Vault is down');
    await vault.startNode(0);
    // A rotation asked for now needs Vault: the sidecar's token and role survived the restart.
    expect((await curlInPod(paymentsSidecar, 15000, '/rotate', { method: 'POST' })).status).toBe(202);
    await waitFor(async () => (await serial()) !== before, 60_000, "payments' sidecar to renew from the restarted Vault");
    const back = await calls();
    await waitFor(async () => (await calls()) >= back + 20, 60_000, 'the loop to make 20 calls after the renewal');
    const result = JSON.parse((await ordersApp('/loop/stop', 60)).body) as { ok: number; calls: number; failed: unknown[] };
    expect(result.failed).toEqual([]);
    expect(result.ok).toBe(result.calls);
    console.log(`vault restart loop: ${result.calls} calls, ${result.calls - down} from Vault's stop on`);
  }, 240_000);

  it('restarts a frozen sidecar through its liveness probe (SIGSTOP: the process lives, /healthz does not answer), and the pod recovers', async () => {
    const before = status(orders, 'mtls-sidecar')?.restartCount ?? 0;
    const pid = await containerPid(node, orders, 'mtls-sidecar');
    process.kill(pid, 'SIGSTOP');
    try {
      orders = await waitForPod(
        node,
        NS,
        'app=orders',
        (p) => isReady(p) && (status(p, 'mtls-sidecar')?.restartCount ?? 0) > before,
        "the kubelet to restart orders' frozen sidecar (liveness probe) and the pod to be ready",
        180_000,
      );
    } finally {
      // Only if the kubelet never got to it: a stopped process left behind holds the test node.
      try {
        process.kill(pid, 'SIGCONT');
      } catch {}
    }
    expect(status(orders, 'app')?.restartCount).toBe(0);
    const events = await podEvents(node.kube, orders);
    console.log(
      `orders' pod events after the liveness restart:\n${events.map((e) => `  ${e.type} ${e.reason} ×${e.count ?? 1}: ${e.message}`).join('\n')}`,
    );
    expect(events.some((e) => e.reason === 'Unhealthy' && /Liveness probe failed/.test(e.message ?? ''))).toBe(true);
    expect(JSON.parse((await ordersApp('/call')).body)).toMatchObject({ status: 200 });
  }, 240_000);

  it('restarts a sidecar killed in the pod, and the pod recovers', async () => {
    // Counted from now: the liveness test before this one restarted it already.
    const before = status(orders, 'mtls-sidecar')?.restartCount ?? 0;
    const id = status(orders, 'mtls-sidecar')?.containerID?.replace(/^containerd:\/\//, '') ?? '';
    await node.ctr(['tasks', 'kill', '--signal', 'SIGKILL', id]);
    orders = await waitForPod(
      node,
      NS,
      'app=orders',
      (p) => isReady(p) && (status(p, 'mtls-sidecar')?.restartCount ?? 0) > before,
      "orders' sidecar to be restarted and ready",
    );
    expect(status(orders, 'app')?.restartCount).toBe(0);
    expect(JSON.parse((await ordersApp('/call')).body)).toMatchObject({ status: 200 });
  }, 180_000);
});

describe('ordering', () => {
  it('a Job with the sidecar completes: the native sidecar does not hold it open', async () => {
    await create(`/apis/batch/v1/namespaces/${NS}/jobs`, {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'batch', namespace: NS },
      spec: {
        backoffLimit: 0,
        template: {
          metadata: {
            labels: { app: 'batch' },
            annotations: {
              'vault-mtls-sidecar/inject': 'true',
              'vault-mtls-sidecar/role': 'batch',
              'vault-mtls-sidecar/outbound': `9001=payments.${NS}.svc:8443`,
            },
          },
          spec: {
            serviceAccountName: 'batch',
            automountServiceAccountToken: false,
            restartPolicy: 'Never',
            hostAliases: [{ ip: payments.status.podIP, hostnames: [`payments.${NS}.svc`] }],
            containers: [
              {
                name: 'app',
                image: image.name,
                imagePullPolicy: 'Never',
                command: [
                  'node',
                  '-e',
                  "fetch('http://127.0.0.1:9001/pay').then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(2))",
                ],
                securityContext: restricted,
              },
            ],
          },
        },
      },
    });
    const done = await waitForPod(
      node,
      NS,
      'app=batch',
      (p) => p.status.phase === 'Succeeded' || p.status.phase === 'Failed',
      'the Job pod to finish',
    );
    expect(done.status.phase).toBe('Succeeded');
    expect(status(done, 'app')?.state.terminated?.exitCode).toBe(0);
    expect(status(done, 'mtls-sidecar')?.state.terminated).toBeDefined();
    await waitFor(
      async () => {
        const job = await node.kube.request<{ status?: { succeeded?: number } }>('GET', `/apis/batch/v1/namespaces/${NS}/jobs/batch`);
        return job.body.status?.succeeded === 1;
      },
      60_000,
      'the Job to count one success',
    );
  }, 240_000);

  it('on deletion the app stops first and the sidecar drains: a request in flight completes', async () => {
    const slow = ordersApp('/call?delay=3000', 30);
    await new Promise((r) => setTimeout(r, 1000));
    const old = payments;
    // The sidecar may have shut down before (the SIGTERM test): wait for one more shutdown line.
    const shutdowns = (log: string) => log.split('\n').filter((l) => l.includes('"msg":"shutting down"'));
    const shutdownsBefore = shutdowns(node.containerLog(old, 'mtls-sidecar')).length;
    const deleted = await node.kube.request('DELETE', `/api/v1/namespaces/${NS}/pods/${old.metadata.name}`);
    expect(deleted.status).toBe(200);
    // Both containers' logs as the kubelet wrote them, read until the sidecar has logged its
    // shutdown (the kubelet removes them with the pod).
    let appLog = '';
    let sidecarLog = '';
    await waitFor(
      () => {
        appLog = node.containerLog(old, 'app') || appLog;
        sidecarLog = node.containerLog(old, 'mtls-sidecar') || sidecarLog;
        return shutdowns(sidecarLog).length > shutdownsBefore;
      },
      60_000,
      () => `the payments sidecar to log its shutdown (app: ${appLog.slice(-500)} sidecar: ${sidecarLog.slice(-500)})`,
    );
    // The request in flight went through payments' sidecar and app while both were stopping.
    expect(JSON.parse((await slow).body)).toMatchObject({ status: 200, body: { app: 'payments' } });
    // The kubelet signalled the sidecar only once the app had finished and exited.
    const appExited = loggedAt(appLog, 'app: exiting');
    const sidecarSignalled = shutdowns(sidecarLog).at(-1)?.split(' ')[0] ?? '';
    console.log(`payments deleted: app exited ${appExited}, sidecar got SIGTERM ${sidecarSignalled}`);
    expect(sidecarSignalled > appExited).toBe(true);
    expect(loggedAt(appLog, 'app: SIGTERM') < appExited).toBe(true);
  }, 120_000);
});
