/**
 * The admission webhook under attack: the built CLI (`vault-mtls-sidecar webhook`) in its own
 * process with a files identity made by openssl, so "still alive" means something. Callers post
 * raw bodies as any pod on the network could, and read back what the webhook answered.
 */
import { writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { expect } from 'vitest';
import { loggedPort, type Spawned, spawnCli } from '../support/cli.js';
import { TestPki } from '../support/pki.js';

export interface WebhookAnswer {
  status: number | string;
  /** The parsed JSON body, when the body was JSON. */
  json?: unknown;
  text: string;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: { code?: number; message?: string };
  patchType?: string;
  patch?: string;
}

export interface WebhookUnderAttack {
  readonly port: number;
  readonly process: Spawned;
  post(body: string | Buffer, urlPath?: string): Promise<WebhookAnswer>;
  /** Posts an AdmissionReview for `pod` and returns the response part. */
  review(pod: unknown, extra?: Record<string, unknown>): Promise<AdmissionResponse>;
  /** A well-annotated pod is patched with the sidecar, and the process is alive. */
  assertServesGoodPod(): Promise<void>;
  stop(): Promise<void>;
}

export const GOOD_ANNOTATIONS = {
  'vault-mtls-sidecar/inject': 'true',
  'vault-mtls-sidecar/role': 'orders',
  'vault-mtls-sidecar/inbound': '8443:8080',
};

export function goodPod(annotations: Record<string, string> = GOOD_ANNOTATIONS): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'orders', annotations },
    spec: { serviceAccountName: 'orders', containers: [{ name: 'app', image: 'example/orders:1.0' }] },
  };
}

export function admissionReview(object: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'b6c1a6d2-0000-4000-8000-000000000001',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'mesh',
      operation: 'CREATE',
      object,
      ...extra,
    },
  };
}

/** The JSON patch of an answer, decoded. */
export function patchOf(response: AdmissionResponse): { op: string; path: string; value?: unknown }[] {
  return JSON.parse(Buffer.from(response.patch ?? '', 'base64').toString('utf8')) as { op: string; path: string; value?: unknown }[];
}

export async function startWebhookUnderAttack(flags: string[] = [], env: Record<string, string> = {}): Promise<WebhookUnderAttack> {
  const pki = TestPki.create('webhook');
  const serving = pki.leaf('webhook', { cn: 'webhook', dns: ['localhost'], ips: ['127.0.0.1'] });
  const config = path.join(pki.dir, 'webhook.yaml');
  writeFileSync(
    config,
    `identity: { source: files, files: { cert: ${serving.certFile}, key: ${serving.keyFile}, ca: ${pki.ca.certFile} } }\nadmin: { listen: "127.0.0.1:0" }\n`,
  );
  const run = spawnCli(
    [
      'webhook',
      '--config',
      config,
      '--listen',
      '127.0.0.1:0',
      '--pod-vault-addr',
      'https://vault.vault.svc:8200',
      '--log-level',
      'info',
      ...flags,
    ],
    env,
  );
  const port = await loggedPort(run, 'webhook listener ready');
  const agent = new https.Agent({ keepAlive: false });

  const post = (body: string | Buffer, urlPath = '/mutate') =>
    new Promise<WebhookAnswer>((resolve) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port,
          path: urlPath,
          method: 'POST',
          ca: pki.ca.cert,
          servername: 'localhost',
          agent,
          headers: { 'content-type': 'application/json' },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = JSON.parse(text);
            } catch {
              json = undefined;
            }
            resolve({ status: res.statusCode ?? 0, json, text });
          });
          res.on('error', (err: NodeJS.ErrnoException) => resolve({ status: err.code ?? 'error', text: '' }));
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) => resolve({ status: err.code ?? 'error', text: '' }));
      req.end(body);
    });

  const review = async (pod: unknown, extra: Record<string, unknown> = {}) => {
    const answer = await post(JSON.stringify(admissionReview(pod, extra)));
    expect(answer.status, answer.text).toBe(200);
    return (answer.json as { response: AdmissionResponse }).response;
  };

  return {
    port,
    process: run,
    post,
    review,
    async assertServesGoodPod() {
      expect(run.child.exitCode, run.stderr()).toBeNull();
      const response = await review(goodPod());
      expect(response.allowed).toBe(true);
      const patch = patchOf(response);
      expect(JSON.stringify(patch)).toContain('"name":"mtls-sidecar"');
      expect(run.child.exitCode, run.stderr()).toBeNull();
    },
    async stop() {
      run.child.kill('SIGTERM');
      await run.exited;
    },
  };
}
