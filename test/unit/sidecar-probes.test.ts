/**
 * Issue 29, defect 7: a pod started during a Vault outage must not have its sidecar restarted.
 * Waiting for Vault is not a crash: the injected spec (and deploy/, and the chart's webhook) hold
 * the app with a startup probe long enough for an outage of hours, probe often enough that the pod
 * is Ready within seconds of Vault's return, and the liveness endpoint stays OK while the sidecar
 * waits (checked on a real sidecar whose certificate source keeps failing).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { buildConfig } from '../../src/config/load.js';
import { ErrorCodes, SidecarError } from '../../src/errors.js';
import { injectYaml } from '../../src/kubernetes/inject.js';
import { Sidecar } from '../../src/sidecar.js';
import { WORKLOADS } from '../support/workloads.js';

type Json = Record<string, unknown>;
interface Probe {
  httpGet: { path: string; port: number | string };
  periodSeconds?: number;
  failureThreshold?: number;
  initialDelaySeconds?: number;
}
const DEPLOY = path.resolve(import.meta.dirname, '../../deploy');
/** An outage the pod must ride out without a sidecar restart (the issue asks for at least 10 minutes). */
const OUTAGE_SECONDS = 60 * 60;

/** Seconds the kubelet gives a startup probe before it kills the container (Kubernetes defaults: period 10, threshold 3). */
const startupBudget = (p: Probe) => (p.periodSeconds ?? 10) * (p.failureThreshold ?? 3);

function expectHoldsThroughOutage(container: { startupProbe?: Probe; livenessProbe?: Probe; readinessProbe?: Probe }): void {
  const { startupProbe, livenessProbe, readinessProbe } = container;
  // Holds the app until /readyz (certificate + listeners), for longer than any outage worth riding out...
  expect(startupProbe?.httpGet.path).toBe('/readyz');
  expect(startupBudget(startupProbe as Probe)).toBeGreaterThanOrEqual(OUTAGE_SECONDS);
  // ...while looking often enough that the app starts within seconds of the first certificate.
  expect(startupProbe?.periodSeconds).toBeLessThanOrEqual(2);
  expect(readinessProbe?.httpGet.path).toBe('/readyz');
  // Liveness on /healthz, which stays OK while waiting for Vault (below), never on /readyz.
  expect(livenessProbe?.httpGet.path).toBe('/healthz');
}

describe('the injected native sidecar', () => {
  it('is not restarted by its probes while it waits for Vault, and releases the app at once', () => {
    const out = parse(
      injectYaml(WORKLOADS.Deployment as string, 'Deployment', { vaultAddr: 'https://vault:8200', image: 'x/sidecar:1' }).text,
    ) as Json;
    const pod = ((out.spec as Json).template as Json).spec as { initContainers: Json[] };
    expectHoldsThroughOutage(pod.initContainers[0] as Json);
  });
});

describe('deploy/ and the chart', () => {
  it('deployment.yaml holds the app through an outage without restarting the sidecar', () => {
    const deployment = parseAllDocuments(readFileSync(path.join(DEPLOY, 'deployment.yaml'), 'utf8'))[0]?.toJS() as Json;
    const pod = ((deployment.spec as Json).template as Json).spec as { initContainers: Json[] };
    expectHoldsThroughOutage(pod.initContainers[0] as Json);
  });

  it('deployment-classic.yaml waits in its postStart hook as long', () => {
    const deployment = parseAllDocuments(readFileSync(path.join(DEPLOY, 'deployment-classic.yaml'), 'utf8'))[0]?.toJS() as Json;
    const sidecar = (((deployment.spec as Json).template as Json).spec as { containers: Json[] }).containers[0] as Json;
    const command = ((sidecar.lifecycle as Json).postStart as { exec: { command: string[] } }).exec.command;
    expect(command).toContain('wait-ready');
    expect(Number(command[command.indexOf('--timeout') + 1])).toBeGreaterThanOrEqual(OUTAGE_SECONDS);
    expect((sidecar.livenessProbe as Probe).httpGet.path).toBe('/healthz');
  });

  it("the chart's webhook, which waits for Vault the same way, is not restarted either", () => {
    const template = readFileSync(path.join(DEPLOY, 'chart/templates/deployment.yaml'), 'utf8');
    const startup =
      /startupProbe:\s*\n\s*httpGet: \{ path: (\S+), port: admin \}\s*\n\s*periodSeconds: (\d+)\s*\n\s*failureThreshold: (\d+)/.exec(
        template,
      );
    expect(startup?.[1]).toBe('/readyz');
    expect(Number(startup?.[2]) * Number(startup?.[3])).toBeGreaterThanOrEqual(OUTAGE_SECONDS);
  });
});

describe('a sidecar waiting for Vault', () => {
  let sidecar: Sidecar | undefined;
  afterAll(async () => {
    await sidecar?.stop(100, 0);
  });

  it('answers /healthz 200 (alive) and /readyz 503 (not ready) while no certificate comes', async () => {
    const config = buildConfig(
      {
        identity: { source: 'dev', commonName: 'web.test', ttl: '10m' },
        inbound: [{ name: 'in', listen: '127.0.0.1:0', target: '127.0.0.1:9' }],
        admin: { listen: '127.0.0.1:0' },
        startupTimeout: '1s',
      },
      {},
    );
    const source = {
      kind: 'vault',
      issue: () =>
        Promise.reject(new SidecarError(ErrorCodes.VAULT_UNREACHABLE, 'vault: issue: cannot reach http://vault:8200 (ECONNREFUSED)')),
      close: async () => [],
    };
    sidecar = await Sidecar.create(config, pino({ level: 'silent' }), { source });
    const starting = sidecar.start();
    const waiting = sidecar;
    let port = 0;
    await expect.poll(() => (port = waiting.admin.address()?.port ?? 0), { timeout: 10_000 }).toBeGreaterThan(0);
    // Past startupTimeout (1 s), several times over: still alive, still waiting, never ready.
    await expect.poll(() => sidecar?.renewer.lastError, { timeout: 5000 }).toBeTruthy();
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { reasons: string[] }).reasons).toContain('no valid certificate');
    }
    void starting.catch(() => undefined);
  });
});
