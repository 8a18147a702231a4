/**
 * Issue 29: Vault HA under load. Three Vault nodes with raft storage sit behind a TCP balancer that
 * keeps every node in its pool, dead or sealed (a Kubernetes Service that publishes not-ready
 * addresses keeps a sealed Vault pod in its endpoints). Two sidecar processes (the built CLI) renew
 * 45 s certificates and 30 s AppRole tokens through the balancer while calls flow client → orders'
 * outbound → mTLS → payments' inbound → app. The leader is killed (SIGKILL) a second before a
 * renewal is due, comes back sealed at once, and is unsealed later.
 *
 * What the sidecars meet meanwhile: a refused connection (the dead node), 503 "Vault is sealed"
 * (after which the next attempt dials again and the balancer picks another node), and standbys
 * that, until a new leader is elected, answer 307 to the dead leader's api_addr (refused: not
 * Vault's origin; the next attempt asks again). No call may fail, and a renewal that ran into the
 * outage must succeed within RESUME_BOUND_MS of a survivor becoming the active node.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { loggedPort, type Spawned, spawnCli, waitFor } from '../support/cli.js';
import { type LoadResult, startLoad } from '../support/load.js';
import { hostPort, startTcpBalancer, type TcpBalancer } from '../support/tcp-balancer.js';
import { vaultApi } from '../support/vault-api.js';
import { type PersistentVault, startPersistentVault } from '../support/vault-persistent.js';
import { APPROLE_MOUNT, APPROLE_ROLE, configureTestVault, type TestVault } from '../support/vault-setup.js';

const { bin } = inject('vault');
/** The longest a renewal that ran into the outage may take to succeed once a new leader is usable. */
const RESUME_BOUND_MS = 10_000;

let cluster: PersistentVault;
let balancer: TcpBalancer;
let app: http.Server;
const sidecars: Sidecar[] = [];
/** The node that was killed, from the kill until it is unsealed. */
let down: number | undefined;
/** When the balancer sent a new connection to the down node. */
const toDown: number[] = [];

interface Sidecar {
  readonly name: string;
  readonly run: Spawned;
}

interface RenewalEvent {
  readonly at: number;
  readonly ok: boolean;
  readonly serial?: string;
  readonly nextRenewal?: number;
  readonly msg: string;
}

/** "certificate published" and "certificate renewal failed" from a sidecar's JSON log, in order. */
function renewals(sidecar: Sidecar): RenewalEvent[] {
  const events: RenewalEvent[] = [];
  for (const line of sidecar.run.stdout().split('\n')) {
    if (!line.startsWith('{')) continue;
    let entry: { time?: string; msg?: string; serial?: string; nextRenewal?: string };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      continue; // a line still being written
    }
    const at = Date.parse(entry.time ?? '');
    const msg = entry.msg ?? '';
    if (msg === 'certificate published') {
      events.push({ at, ok: true, msg, serial: entry.serial, nextRenewal: Date.parse(entry.nextRenewal ?? '') });
    } else if (msg.startsWith('certificate renewal failed')) {
      events.push({ at, ok: false, msg });
    }
  }
  return events;
}

function describe(sidecar: Sidecar, since = 0): string {
  return renewals(sidecar)
    .filter((e) => e.at >= since)
    .map((e) => `  ${sidecar.name} ${new Date(e.at).toISOString()} ${e.ok ? `published ${e.serial}` : e.msg}`)
    .join('\n');
}

/** GET sys/health: 200 active, 429 standby, 503 sealed, 0 not answering. */
async function health(address: string): Promise<number> {
  try {
    const res = await fetch(`${address}/v1/sys/health`, { signal: AbortSignal.timeout(1000) });
    await res.body?.cancel();
    return res.status;
  } catch {
    return 0;
  }
}

async function startCli(name: string, config: Record<string, unknown>): Promise<Sidecar> {
  const dir = mkdtempSync(path.join(tmpdir(), `sidecar-vault-ha-${name}-`));
  const file = path.join(dir, 'config.json');
  writeFileSync(file, JSON.stringify({ admin: { listen: '127.0.0.1:0' }, log: { level: 'info', format: 'json' }, ...config }));
  const sidecar = { name, run: spawnCli(['run', '--config', file]) };
  sidecars.push(sidecar);
  await waitFor(
    () => sidecar.run.stdout().includes('"msg":"sidecar ready"'),
    30_000,
    () => `${name} to be ready (stdout: ${sidecar.run.stdout().slice(-2000)} stderr: ${sidecar.run.stderr()})`,
  );
  return sidecar;
}

beforeAll(async () => {
  cluster = await startPersistentVault(bin, { nodes: 3 });
  // A Service that keeps every endpoint, whatever state its node is in: round-robin, except that
  // while the killed node is down or sealed every other new connection goes to it, and the next one
  // to a node that is up (the worst case of a pool without health checks, and no dial repeats it).
  balancer = await startTcpBalancer((n) => {
    const up = cluster.nodes.map((_, i) => i).filter((i) => i !== down);
    const i = down !== undefined && n % 2 === 0 ? down : (up[Math.floor(n / 2) % up.length] ?? 0);
    if (i === down) toDown.push(Date.now());
    return hostPort(cluster.nodes[i]?.address ?? '');
  });
  app = http.createServer((req, res) => {
    req.resume();
    res.end('ok');
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
}, 120_000);

afterAll(async () => {
  await Promise.all(
    sidecars.map(async ({ run }) => {
      run.child.kill('SIGTERM');
      const exited = await Promise.race([run.exited, new Promise((r) => setTimeout(() => r('timeout'), 5000))]);
      if (exited === 'timeout') run.child.kill('SIGKILL');
    }),
  );
  balancer?.close();
  app?.closeAllConnections();
  app?.close();
  await cluster?.stop();
}, 60_000);

it('loses no call and resumes renewals within seconds when the leader dies and comes back sealed', { timeout: 150_000 }, async () => {
  const startedAt = Date.now();
  const vault: TestVault = await configureTestVault(cluster.address, cluster.rootToken, { bin });
  // AppRole tokens of 30 s: the sidecars renew their tokens (or log in again) through the outage too.
  await vaultApi(vault, 'POST', `auth/${APPROLE_MOUNT}/role/${APPROLE_ROLE}`, { token_ttl: '30s', token_max_ttl: '10m' });
  const dir = mkdtempSync(path.join(tmpdir(), 'sidecar-vault-ha-'));
  const secretIdFile = path.join(dir, 'secret-id');
  const secret = await vaultApi<{ data: { secret_id: string } }>(vault, 'POST', `auth/${APPROLE_MOUNT}/role/${APPROLE_ROLE}/secret-id`);
  writeFileSync(secretIdFile, secret.data.secret_id);

  const vaultSection = {
    address: balancer.address,
    auth: { method: 'approle', mount: APPROLE_MOUNT, roleId: vault.approleRoleId, secretIdFile },
    pki: { mount: vault.pkiMount, role: vault.role },
  };
  // 45 s certificates renewed at 20–30 % of their life (every 9–14 s): renewals fall due during the
  // outage, with half a minute of validity in hand.
  const identity = (name: string) => ({
    commonName: `${name}.test`,
    dnsNames: [`${name}.test`],
    ttl: '45s',
    renewal: { windowStart: 0.2, windowEnd: 0.3, outageBudget: '10s' },
  });
  const appPort = (app.address() as AddressInfo).port;
  const payments = await startCli('payments', {
    vault: vaultSection,
    identity: identity('payments'),
    inbound: [{ name: 'app', listen: '127.0.0.1:0', target: `127.0.0.1:${appPort}` }],
  });
  const inboundPort = await loggedPort(payments.run, 'inbound listener ready');
  const orders = await startCli('orders', {
    vault: vaultSection,
    identity: identity('orders'),
    outbound: [{ name: 'payments', listen: '127.0.0.1:0', target: `127.0.0.1:${inboundPort}`, serverName: 'payments.test' }],
  });
  const outboundPort = await loggedPort(orders.run, 'outbound listener ready');
  const both = [payments, orders];

  // Load in phases, so each phase is shown to have carried calls.
  const phases: Record<string, LoadResult> = {};
  let load = startLoad(outboundPort, 2);
  const nextPhase = async (name: string) => {
    phases[name] = await load.stop();
    load = startLoad(outboundPort, 2);
  };

  // Kill the leader a second before the first renewal falls due.
  const dueAt = Math.min(...both.map((s) => renewals(s).at(-1)?.nextRenewal ?? Number.NaN));
  expect(dueAt).toBeGreaterThan(Date.now());
  await new Promise((r) => setTimeout(r, Math.max(0, dueAt - 1000 - Date.now())));
  const statuses = await Promise.all(cluster.nodes.map((n) => health(n.address)));
  const leader = statuses.indexOf(200);
  expect(leader, `health of the nodes: ${statuses.join(', ')}`).toBeGreaterThanOrEqual(0);
  await nextPhase('before');
  const killedAt = Date.now();
  down = leader;
  await cluster.stopNode(leader, 'SIGKILL');
  // The pod comes back at once, sealed, and stays in the Service's endpoints. Every connection
  // through the balancer is cut then (the worst case: each sidecar's next call dials again, and
  // every other dial meets the sealed node).
  let sealedAt = 0;
  const restart = cluster.startNode(leader, { sealed: true }).then(() => {
    sealedAt = Date.now();
    balancer.dropAll();
  });

  // Usable again: one of the survivors is the active node.
  const survivors = cluster.nodes.filter((_, i) => i !== leader);
  let usableAt = 0;
  await waitFor(
    async () => {
      const now = Date.now();
      if ((await Promise.all(survivors.map((n) => health(n.address)))).includes(200)) usableAt = now;
      return usableAt > 0;
    },
    60_000,
    'a surviving node to become the active node',
  );
  await restart;
  await nextPhase('outage');

  // A sidecar whose renewal failed between the kill and usableAt must renew within RESUME_BOUND_MS
  // of usableAt (a renewal falling due later is not a resumption).
  const caught = both.filter((s) => renewals(s).some((e) => !e.ok && e.at >= killedAt && e.at <= usableAt));
  const resumed = (s: Sidecar) => renewals(s).find((e) => e.ok && e.at > killedAt);
  const timeline = () =>
    `killed node${leader} at ${new Date(killedAt).toISOString()}, usable at ${new Date(usableAt).toISOString()}\n${both
      .map((s) => describe(s, killedAt - 2000))
      .join('\n')}`;
  // The kill was timed so that a renewal ran into the outage; otherwise this test measured nothing.
  expect(caught.length, timeline()).toBeGreaterThan(0);
  await waitFor(
    () => caught.every((s) => resumed(s) !== undefined),
    usableAt + 30_000 - Date.now(),
    () => `renewals to resume:\n${timeline()}`,
  );
  const delays = Object.fromEntries(caught.map((s) => [s.name, (resumed(s)?.at ?? Number.NaN) - usableAt]));
  for (const [name, delay] of Object.entries(delays)) expect(delay, `${name}: ${timeline()}`).toBeLessThan(RESUME_BOUND_MS);

  // The restarted node stays sealed in the pool until each sidecar has renewed past it once more.
  const resumedSerials = new Map(both.map((s) => [s, renewals(s).at(-1)?.serial]));
  await waitFor(
    () => both.every((s) => renewals(s).at(-1)?.serial !== resumedSerials.get(s)),
    30_000,
    () => `a further renewal with node${leader} sealed:\n${timeline()}`,
  );
  expect(await health(cluster.nodes[leader]?.address ?? '')).toBe(503);
  const sealedConnections = toDown.filter((at) => at >= sealedAt).length;
  expect(sealedConnections, 'connections the balancer sent to the sealed node').toBeGreaterThan(0);
  await nextPhase('sealed');

  // Unsealed, it rejoins as a standby; a renewal asked for now (SIGHUP) goes through a full pool.
  await cluster.unsealNode(leader);
  down = undefined;
  const unsealedSerials = new Map(both.map((s) => [s, renewals(s).at(-1)?.serial]));
  for (const s of both) s.run.child.kill('SIGHUP');
  await waitFor(
    () => both.every((s) => renewals(s).at(-1)?.serial !== unsealedSerials.get(s)),
    20_000,
    () => `a renewal after node${leader} was unsealed:\n${timeline()}`,
  );
  await new Promise((r) => setTimeout(r, 2000));
  phases.unsealed = await load.stop();

  const failed = Object.values(phases).flatMap((p) => p.failures);
  const calls = Object.fromEntries(Object.entries(phases).map(([name, p]) => [name, p.ok]));
  const summary = {
    calls,
    failed: failed.length,
    outageMs: usableAt - killedAt,
    resumedAfterUsableMs: delays,
    sealedConnections,
    renewalFailures: Object.fromEntries(both.map((s) => [s.name, renewals(s).filter((e) => !e.ok).length])),
    wallMs: Date.now() - startedAt,
  };
  console.log(`vault HA: ${JSON.stringify(summary)}`);
  expect(failed, JSON.stringify(failed.slice(0, 10))).toEqual([]);
  for (const [name, ok] of Object.entries(calls)) expect(ok, `calls in phase ${name}`).toBeGreaterThan(0);
  for (const s of both) expect(s.run.child.exitCode, `${s.name} exited: ${s.run.stderr()}`).toBeNull();
});
