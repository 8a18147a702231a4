/**
 * Vault (or OpenBao) as production runs it, for tests that stop and restart it: `server` with
 * integrated storage (raft) in a directory of its own, initialized with one key share, unsealed,
 * and unsealed again after every restart. A dev server (dev-server.ts) keeps everything in memory
 * and comes back empty; this one comes back with its mounts, roles, issued tokens and leases.
 *
 * `nodes` > 1 starts a raft cluster on one host (node 0 is initialized, the others join it through
 * retry_join and are unsealed with the same key), for tests of a standby taking over.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { waitFor } from './cli.js';
import { freePort } from './ports.js';

export interface PersistentVaultNode {
  /** http://<host>:<port>, the same across restarts. */
  readonly address: string;
  /** Whether its process is running (it may still be sealed or electing a leader). */
  readonly running: boolean;
  /** The last 20,000 characters of its output. */
  log(): string;
}

export interface PersistentVault {
  /** Node 0's address (the active node until a test stops it). */
  readonly address: string;
  readonly rootToken: string;
  /** The one unseal key share (threshold 1). */
  readonly unsealKey: string;
  readonly nodes: readonly PersistentVaultNode[];
  /**
   * Stops node `i` as a service manager would (SIGTERM, waiting for it to exit), or kills it
   * (`SIGKILL`: a crashed node, no leadership handed over); its data stays.
   */
  stopNode(i?: number, signal?: NodeJS.Signals): Promise<void>;
  /**
   * Starts node `i` again on the same address and data, unseals it and waits until it serves: as
   * the active node when no other node runs, as a standby otherwise. With `sealed`, it only waits
   * until the node answers (sealed, as a restarted pod comes back); `unsealNode` finishes the job.
   */
  startNode(i?: number, options?: { sealed?: boolean }): Promise<void>;
  /** Unseals running node `i` and waits until it is the active node or a standby. */
  unsealNode(i?: number): Promise<void>;
  /** Stops every node and removes their data. */
  stop(): Promise<void>;
}

interface NodeState {
  readonly id: string;
  readonly address: string;
  readonly configFile: string;
  child?: ChildProcess;
  exited?: Promise<void>;
  output: string;
}

/** GET /v1/sys/health: 200 active, 429 standby, 501 not initialized, 503 sealed; 0 not listening. */
async function health(address: string): Promise<number> {
  try {
    const res = await fetch(`${address}/v1/sys/health`, { signal: AbortSignal.timeout(2000) });
    await res.body?.cancel();
    return res.status;
  } catch {
    return 0;
  }
}

async function put<T>(address: string, apiPath: string, body: unknown): Promise<T> {
  const res = await fetch(`${address}/v1/${apiPath}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`vault PUT ${apiPath} at ${address}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

function config(node: { id: string; host: string; port: number; clusterPort: number; dataDir: string }, leader?: string): string {
  return `storage "raft" {
  path    = "${node.dataDir}"
  node_id = "${node.id}"
${leader ? `  retry_join {\n    leader_api_addr = "${leader}"\n  }\n` : ''}}
listener "tcp" {
  address         = "${node.host}:${node.port}"
  cluster_address = "${node.host}:${node.clusterPort}"
  tls_disable     = true
}
api_addr      = "http://${node.host}:${node.port}"
cluster_addr  = "https://${node.host}:${node.clusterPort}"
# Containers and CI runners rarely allow mlock; raft keeps its data in files anyway.
disable_mlock = true
ui            = false
`;
}

/**
 * Starts `nodes` (1 when omitted) Vault servers with raft storage on free ports of `host`
 * (127.0.0.1 when omitted), initializes node 0 with one key share, unseals every node, and
 * resolves once node 0 is the active node and the others are standbys.
 */
export async function startPersistentVault(bin: string, options: { host?: string; nodes?: number } = {}): Promise<PersistentVault> {
  const host = options.host ?? '127.0.0.1';
  const count = options.nodes ?? 1;
  const home = mkdtempSync(path.join(tmpdir(), 'sidecar-vault-raft-'));
  const states: NodeState[] = [];
  for (let i = 0; i < count; i++) {
    const [port, clusterPort] = [await freePort(), await freePort()];
    const id = `node${i}`;
    const dataDir = path.join(home, id);
    mkdirSync(dataDir);
    const configFile = path.join(home, `${id}.hcl`);
    writeFileSync(configFile, config({ id, host, port, clusterPort, dataDir }, i === 0 ? undefined : states[0]?.address));
    states.push({ id, address: `http://${host}:${port}`, configFile, output: '' });
  }

  const launch = (state: NodeState) => {
    // A private HOME: nothing reads or writes the developer's ~/.vault-token.
    const child = spawn(bin, ['server', `-config=${state.configFile}`], {
      env: { PATH: process.env.PATH, HOME: home },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (c: Buffer) => {
      state.output = (state.output + c.toString()).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    state.child = child;
    state.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  };
  const running = (state: NodeState) => state.child !== undefined && state.child.exitCode === null && state.child.signalCode === null;
  const nodeAt = (i: number) => {
    const state = states[i];
    if (!state) throw new Error(`no Vault node ${i}: this cluster has ${states.length}`);
    return state;
  };
  const waitForStatus = async (state: NodeState, accept: (status: number) => boolean, what: string) => {
    let last = 0;
    await waitFor(
      async () => {
        if (!running(state)) throw new Error(`Vault ${state.id} exited while waiting for it to be ${what}:\n${state.output.slice(-3000)}`);
        last = await health(state.address);
        return accept(last);
      },
      60_000,
      () => `Vault ${state.id} at ${state.address} to be ${what} (health ${last}):\n${state.output.slice(-3000)}`,
    );
  };
  const stopNode = async (state: NodeState, signal: NodeJS.Signals = 'SIGTERM') => {
    if (!running(state)) return;
    state.child?.kill(signal);
    const gone = await Promise.race([state.exited?.then(() => true), new Promise((r) => setTimeout(() => r(false), 15_000))]);
    if (!gone) {
      state.child?.kill('SIGKILL');
      await state.exited;
    }
  };
  const stopAll = async () => {
    for (const state of [...states].reverse()) await stopNode(state);
    rmSync(home, { recursive: true, force: true });
  };

  let unsealKey = '';
  /** Unseals the node and waits until it is the active node (`active`) or a standby. */
  const unseal = async (state: NodeState, active: boolean) => {
    // Listening but not yet unsealable (raft still opening, or a joiner not yet initialized by
    // retry_join): health says 501/503 until then; sys/unseal is retried until it takes.
    await waitForStatus(state, (s) => s !== 0, 'listening');
    await waitFor(
      async () => {
        const res = await put<{ sealed: boolean }>(state.address, 'sys/unseal', { key: unsealKey }).catch(() => ({ sealed: true }));
        return !res.sealed;
      },
      60_000,
      () => `Vault ${state.id} to unseal:\n${state.output.slice(-3000)}`,
    );
    if (active) await waitForStatus(state, (s) => s === 200, 'the active node');
    else await waitForStatus(state, (s) => s === 200 || s === 429, 'active or a standby');
  };

  try {
    const first = nodeAt(0);
    launch(first);
    await waitForStatus(first, (s) => s === 501, 'uninitialized');
    const init = await put<{ keys_base64: string[]; root_token: string }>(first.address, 'sys/init', {
      secret_shares: 1,
      secret_threshold: 1,
    });
    unsealKey = init.keys_base64[0] ?? '';
    const rootToken = init.root_token;
    // Node 0 leads before the others join it.
    await unseal(first, true);
    for (const state of states.slice(1)) {
      launch(state);
      await unseal(state, false);
    }
    if (states.length > 1) {
      // Joiners are non-voters until autopilot promotes them (after its stabilization time): until
      // then, stopping the leader would leave no quorum to elect another.
      let voters: string[] = [];
      await waitFor(
        async () => {
          const res = await fetch(`${first.address}/v1/sys/storage/raft/autopilot/state`, {
            headers: { 'x-vault-token': rootToken },
          }).catch(() => undefined);
          const body = (await res?.json().catch(() => ({}))) as { data?: { healthy?: boolean; voters?: string[] } };
          voters = body.data?.voters ?? [];
          return body.data?.healthy === true && voters.length === states.length;
        },
        60_000,
        () => `autopilot to count ${states.length} healthy voters (voters: ${voters.join(', ') || 'none'})`,
      );
    }
    return {
      address: first.address,
      rootToken,
      unsealKey,
      nodes: states.map((state) => ({
        address: state.address,
        get running() {
          return running(state);
        },
        log: () => state.output,
      })),
      stopNode: (i = 0, signal: NodeJS.Signals = 'SIGTERM') => stopNode(nodeAt(i), signal),
      startNode: async (i = 0, options: { sealed?: boolean } = {}) => {
        const state = nodeAt(i);
        if (running(state)) throw new Error(`Vault ${state.id} is already running`);
        launch(state);
        if (options.sealed) {
          await waitForStatus(state, (s) => s === 503, 'listening, sealed');
          return;
        }
        // The only node, or the only one running, must become active; otherwise it rejoins as a standby.
        await unseal(
          state,
          states.every((other) => other === state || !running(other)),
        );
      },
      unsealNode: async (i = 0) => {
        const state = nodeAt(i);
        if (!running(state)) throw new Error(`Vault ${state.id} is not running`);
        await unseal(state, false);
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
