/**
 * A real Kubernetes control plane for the tests: etcd (Debian's etcd-server) and kube-apiserver
 * built from the Go module proxy by scripts/install-kubernetes.sh (cached per machine; `npm test`
 * builds it before vitest starts), on free loopback ports, with RBAC, a service-account issuer and
 * signing key (so TokenRequest works), and a static admin token. No scheduler or kubelet: objects
 * are validated and stored, pods are not run.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { waitFor } from './cli.js';
import { freePort } from './ports.js';
import { preparedPath } from './prepared.js';

export interface KubeApiServer {
  /** https://127.0.0.1:<port> */
  readonly url: string;
  /** The serving certificate (self-signed), to trust it. */
  readonly caPem: string;
  /** A static token in system:masters. */
  readonly adminToken: string;
  /** The service-account token issuer (the `iss` of projected tokens). */
  readonly issuer: string;
  /** Calls the API as the admin; resolves with the status and the parsed JSON body. */
  request<T = Record<string, unknown>>(method: string, apiPath: string, body?: unknown): Promise<{ status: number; body: T }>;
  /**
   * Starts kube-controller-manager against it (Deployments → ReplicaSets → Pods, or the
   * `controllers` named); stopped with stop().
   */
  startControllerManager(controllers?: readonly string[]): void;
  stop(): Promise<void>;
}

function binaryDir(): string {
  return preparedPath('kubernetes');
}

interface Started {
  readonly child: ChildProcess;
  /** The last 3000 characters of its stderr, to say why it failed. */
  tail(): string;
}

function started(name: string, command: string, args: string[], children: ChildProcess[]): Started {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let tail = '';
  child.stderr?.on('data', (c: Buffer) => {
    tail = (tail + c.toString()).slice(-3000);
  });
  child.on('error', (err) => {
    tail += `\n${name}: ${err.message}`;
  });
  children.push(child);
  return { child, tail: () => tail };
}

/**
 * `aggregatorRouting`: the API server calls a Service (a webhook's or an APIService's) at one of
 * its endpoints' pod IPs instead of its cluster IP (`--enable-aggregator-routing`), so a node
 * without kube-proxy can still serve webhooks behind a Service.
 */
export async function startKubeApiServer(options: { aggregatorRouting?: boolean } = {}): Promise<KubeApiServer> {
  const bin = binaryDir();
  const dir = mkdtempSync(path.join(tmpdir(), 'sidecar-kube-'));
  const children: ChildProcess[] = [];
  const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcd = started(
    'etcd',
    'etcd',
    [
      '--data-dir',
      path.join(dir, 'etcd'),
      '--listen-client-urls',
      `http://127.0.0.1:${etcdClient}`,
      '--advertise-client-urls',
      `http://127.0.0.1:${etcdClient}`,
      '--listen-peer-urls',
      `http://127.0.0.1:${etcdPeer}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${etcdPeer}`,
      '--initial-cluster',
      `default=http://127.0.0.1:${etcdPeer}`,
    ],
    children,
  );

  execFileSync('openssl', ['genrsa', '-out', path.join(dir, 'sa.key'), '2048'], { stdio: 'ignore' });
  execFileSync('openssl', ['rsa', '-in', path.join(dir, 'sa.key'), '-pubout', '-out', path.join(dir, 'sa.pub')], { stdio: 'ignore' });
  const adminToken = `admin-${Math.random().toString(36).slice(2)}`;
  writeFileSync(path.join(dir, 'tokens.csv'), `${adminToken},admin,admin-uid,system:masters\n`);
  const url = `https://127.0.0.1:${apiPort}`;
  const issuer = 'https://kubernetes.default.svc.cluster.local';
  const api = started(
    'kube-apiserver',
    path.join(bin, 'kube-apiserver'),
    [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      '--advertise-address=127.0.0.1',
      `--cert-dir=${path.join(dir, 'certs')}`,
      `--service-account-issuer=${issuer}`,
      `--service-account-key-file=${path.join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${path.join(dir, 'sa.key')}`,
      `--token-auth-file=${path.join(dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      '--service-cluster-ip-range=10.0.0.0/24',
      ...(options.aggregatorRouting ? ['--enable-aggregator-routing=true'] : []),
    ],
    children,
  );

  const stop = async () => {
    for (const child of children.reverse()) {
      if (child.exitCode !== null) continue;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      child.kill('SIGKILL');
    }
  };

  let caPem = '';
  const request = <T>(method: string, apiPath: string, body?: unknown) =>
    new Promise<{ status: number; body: T }>((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = https.request(
        `${url}${apiPath}`,
        {
          method,
          ca: caPem || undefined,
          rejectUnauthorized: caPem !== '',
          headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json', accept: 'application/json' },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            let parsed: unknown = text;
            try {
              parsed = JSON.parse(text);
            } catch {}
            resolve({ status: res.statusCode ?? 0, body: parsed as T });
          });
        },
      );
      req.on('error', reject);
      req.end(payload);
    });

  try {
    await waitFor(
      async () => {
        if (api.child.exitCode !== null || etcd.child.exitCode !== null) return true;
        try {
          return (await request('GET', '/readyz')).status === 200;
        } catch {
          return false;
        }
      },
      60_000,
      () => `kube-apiserver /readyz (stderr: ${api.tail()})`,
    );
    const exited = [api, etcd].find((p) => p.child.exitCode !== null);
    if (exited) {
      throw new Error(`the control plane exited: ${exited.tail()}`);
    }
    caPem = readFileSync(path.join(dir, 'certs', 'apiserver.crt'), 'utf8');
  } catch (err) {
    await stop();
    throw err;
  }
  const startControllerManager = (controllers: readonly string[] = ['deployment', 'replicaset', 'serviceaccount']) => {
    const kubeconfig = path.join(dir, 'admin.kubeconfig');
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'test', cluster: { server: url, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
        users: [{ name: 'admin', user: { token: adminToken } }],
        contexts: [{ name: 'test', context: { cluster: 'test', user: 'admin' } }],
        'current-context': 'test',
      }),
    );
    started(
      'kube-controller-manager',
      path.join(bin, 'kube-controller-manager'),
      [
        `--kubeconfig=${kubeconfig}`,
        '--bind-address=127.0.0.1',
        '--secure-port=0',
        `--service-account-private-key-file=${path.join(dir, 'sa.key')}`,
        '--use-service-account-credentials=false',
        '--leader-elect=false',
        `--controllers=${controllers.join(',')}`,
      ],
      children,
    );
  };
  return { url, caPem, adminToken, issuer, request, startControllerManager, stop };
}
