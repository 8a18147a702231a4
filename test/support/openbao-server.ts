/**
 * vitest global setup: a real OpenBao (or Vault) dev server on a free loopback port with a known
 * root token, a PKI mount with a root CA, roles for the test services, and AppRole auth. It is
 * stopped after the run.
 *
 * VAULT_ADDR (with VAULT_TOKEN) points the tests at a server you run yourself; BAO_BIN at a binary
 * (tests that stop and restart Vault always run private dev servers from a binary).
 * Otherwise scripts/install-openbao.sh builds one (once per machine) and prints its path. A missing
 * server is a failure, never a skip.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startDevServer } from './dev-server.js';
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

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env.VAULT_ADDR) {
    const token = process.env.VAULT_TOKEN;
    if (!token) throw new Error('VAULT_ADDR is set for the tests but VAULT_TOKEN is not; give a token that can mount PKI and auth methods');
    // Tests that stop and restart Vault still run private dev servers from a binary.
    project.provide('vault', await configureTestVault(process.env.VAULT_ADDR, token, { bin: serverBinary() }));
    return async () => {};
  }

  const bin = serverBinary();
  const server = await startDevServer(bin);
  try {
    project.provide('vault', await configureTestVault(server.address, 'root', { bin }));
  } catch (err) {
    await server.stop();
    throw err;
  }
  return () => server.stop();
}
