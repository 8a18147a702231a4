/**
 * The built CLI with a Vault identity, for the scenarios where the attacker (or the failure) sits
 * between the sidecar and Vault or in what Vault serves. Ports come from the JSON log lines;
 * every process is killed after the file.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect } from 'vitest';
import { type Spawned, spawnCli, waitFor } from '../support/cli.js';
import { type HttpsResult, httpsRequest } from '../support/sidecars.js';

export interface VaultSidecar {
  readonly run: Spawned;
  readonly adminPort: number;
  port(listener: string): number;
  logs(): Record<string, unknown>[];
  readyz(): Promise<{ status: number; reasons: string[] }>;
  /** A Prometheus sample's value (summed over series matching `labels`), or undefined when absent. */
  metric(name: string, labels?: Record<string, string>): Promise<number | undefined>;
  /** A GET on `listener` as the holder of `client`; rejects when the TLS connection is refused. */
  get(listener: string, client: { cert: string; key: string }, ca: string, urlPath?: string): Promise<HttpsResult>;
  /** Throws unless the process runs and /healthz answers. */
  assertAlive(): Promise<void>;
}

const started: Spawned[] = [];
afterAll(() => {
  for (const run of started.splice(0)) run.child.kill('SIGKILL');
});

export async function startVaultSidecar(options: {
  vault: Record<string, unknown>;
  env: Record<string, string>;
  inbound?: Record<string, unknown>[];
  identity?: Record<string, unknown>;
  /** Wait for the admin server only (a sidecar that cannot get a certificate never says "sidecar ready"). */
  adminOnly?: boolean;
}): Promise<VaultSidecar> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sidecar-vault-attack-'));
  const file = path.join(dir, 'config.json');
  const inbound = (options.inbound ?? []).map((l) => ({ listen: '127.0.0.1:0', ...l }));
  writeFileSync(
    file,
    JSON.stringify({
      vault: options.vault,
      identity: {
        commonName: 'app.test',
        dnsNames: ['localhost'],
        uriSans: ['spiffe://test/ns/default/sa/app'],
        ttl: '10m',
        ...options.identity,
      },
      inbound,
      admin: { listen: '127.0.0.1:0' },
      log: { level: 'info', format: 'json' },
    }),
  );
  const run = spawnCli(['run', '--config', file], options.env);
  started.push(run);
  const logs = () =>
    run
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  await waitFor(
    () => {
      if (run.child.exitCode !== null) throw new Error(`the sidecar exited at start: ${run.stderr()}`);
      return logs().some((l) => l.msg === (options.adminOnly ? 'admin server ready' : 'sidecar ready'));
    },
    20_000,
    () => `the sidecar to start (stdout: ${run.stdout().slice(-3000)} stderr: ${run.stderr()})`,
  );
  const portOf = (line: Record<string, unknown> | undefined) =>
    Number(
      String(line?.address ?? '')
        .split(':')
        .pop(),
    );
  const adminPort = portOf(logs().find((l) => l.msg === 'admin server ready'));
  const admin = (p: string) => fetch(`http://127.0.0.1:${adminPort}${p}`);
  const port = (listener: string) => {
    const bound = portOf(logs().find((l) => l.listener === listener && String(l.msg).endsWith('listener ready')));
    if (!bound) throw new Error(`no port for listener ${listener}`);
    return bound;
  };
  return {
    run,
    adminPort,
    port,
    logs,
    async readyz() {
      const res = await admin('/readyz');
      return { status: res.status, reasons: ((await res.json()) as { reasons: string[] }).reasons };
    },
    async metric(name, labels = {}) {
      const text = await (await admin('/metrics')).text();
      let total: number | undefined;
      for (const line of text.split('\n')) {
        if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
        if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
        total = (total ?? 0) + Number(line.split(' ').pop());
      }
      return total;
    },
    get(listener, client, ca, urlPath = '/') {
      return httpsRequest(port(listener), { cert: client.cert, key: client.key, ca, path: urlPath });
    },
    async assertAlive() {
      expect(run.child.exitCode, `the sidecar exited: ${run.stderr()}`).toBeNull();
      expect((await admin('/healthz')).status).toBe(200);
    },
  };
}
