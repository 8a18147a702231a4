/**
 * vitest global setup: a real OpenBao (or Vault) dev server on a free loopback port with a known
 * root token, a PKI mount with a root CA, roles for the test services, and AppRole auth. It is
 * stopped after the run.
 *
 * VAULT_ADDR (with VAULT_TOKEN) points the tests at a server you run yourself; BAO_BIN at a binary.
 * Otherwise scripts/install-openbao.sh builds one (once per machine) and prints its path. A missing
 * server is a failure, never a skip.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { freePort } from './ports.js';
import { configureTestVault, type TestVault } from './vault-setup.js';

declare module 'vitest' {
  export interface ProvidedContext {
    vault: TestVault;
  }
}

const ROOT = path.resolve(import.meta.dirname, '../..');

function serverBinary(): string {
  if (process.env.BAO_BIN) return process.env.BAO_BIN;
  try {
    const out = execFileSync(path.join(ROOT, 'scripts/install-openbao.sh'), { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = out.toString().trim().split('\n');
    const bin = lines[lines.length - 1];
    if (!bin) throw new Error('the install script printed no path');
    return bin;
  } catch (err) {
    throw new Error(
      `no OpenBao/Vault server for the integration tests: scripts/install-openbao.sh failed (${(err as Error).message}). ` +
        'Install Go and rerun, or set BAO_BIN to a bao/vault binary, or VAULT_ADDR and VAULT_TOKEN to a running server.',
    );
  }
}

async function waitForHealth(address: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the dev server exited with ${child.exitCode}:\n${output()}`);
    try {
      const res = await fetch(`${address}/v1/sys/health`);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the dev server did not become healthy within 30s:\n${output()}`);
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env.VAULT_ADDR) {
    const token = process.env.VAULT_TOKEN;
    if (!token) throw new Error('VAULT_ADDR is set for the tests but VAULT_TOKEN is not; give a token that can mount PKI and auth methods');
    project.provide('vault', await configureTestVault(process.env.VAULT_ADDR, token));
    return async () => {};
  }

  const bin = serverBinary();
  const port = await freePort();
  const home = mkdtempSync(path.join(tmpdir(), 'sidecar-openbao-'));
  const address = `http://127.0.0.1:${port}`;
  let log = '';
  const child = spawn(
    bin,
    ['server', '-dev', '-dev-root-token-id=root', `-dev-listen-address=127.0.0.1:${port}`, '-dev-no-store-token'],
    // A private HOME keeps the dev server from touching the developer's ~/.vault-token.
    { env: { PATH: process.env.PATH, HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const collect = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  try {
    await waitForHealth(address, child, () => log);
    project.provide('vault', await configureTestVault(address, 'root', { bin, home }));
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return async () => {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
    rmSync(home, { recursive: true, force: true });
  };
}
