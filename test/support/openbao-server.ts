/**
 * vitest global setup: a real OpenBao (or Vault) dev server on a free loopback port with a known
 * root token, a PKI mount with a root CA, roles for the test services, and AppRole auth. It is
 * stopped after the run.
 *
 * VAULT_ADDR (with VAULT_TOKEN) points the tests at a server you run yourself; BAO_BIN at a binary
 * (tests that stop and restart Vault always run private dev servers from a binary).
 * Otherwise the one `npm test` built before vitest started (scripts/prepare-tests.sh). A missing
 * server is a failure, never a skip.
 */
import type { TestProject } from 'vitest/node';
import { startDevServer } from './dev-server.js';
import { preparedPath } from './prepared.js';
import { configureTestVault, type TestVault } from './vault-setup.js';

declare module 'vitest' {
  export interface ProvidedContext {
    vault: TestVault;
  }
}

function serverBinary(): string {
  return process.env.BAO_BIN || preparedPath('openbao');
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
