/** Test fixtures shared by the integration files: the echo app, private Vault servers, AppRole credentials. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { startEchoApp } from '../../src/demo/echo-app.js';
import { type DevServer, startDevServer } from './dev-server.js';
import { stopAllSidecars } from './sidecars.js';
import { vaultApi } from './vault-api.js';
import { configureTestVault, type TestVault } from './vault-setup.js';

/** An echo app for the file's sidecars to forward to; stops it and every sidecar after the file. */
export function useEchoApp(): { port(): number } {
  let app: http.Server | undefined;
  let port = 0;
  beforeAll(async () => {
    const started = await startEchoApp();
    app = started.server;
    port = started.address.port;
  });
  afterAll(async () => {
    await stopAllSidecars();
    app?.closeAllConnections();
    app?.close();
  });
  return { port: () => port };
}

/** Starts private dev servers a test may stop, restart or tamper with; all are stopped after the file. */
export function usePrivateVaults(bin: string): (port?: number) => Promise<{ server: DevServer; vault: TestVault }> {
  const servers: DevServer[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });
  return async (port) => {
    const server = await startDevServer(bin, port);
    servers.push(server);
    return { server, vault: await configureTestVault(server.address, 'root', { bin }) };
  };
}

/** An `auth` section for AppRole with a fresh secret id in a file, as a deployment would mount it. */
export async function approleAuth(vault: TestVault): Promise<Record<string, string>> {
  const secret = await vaultApi<{ data: { secret_id: string } }>(vault, 'POST', `auth/${vault.approleMount}/role/sidecar/secret-id`);
  const dir = mkdtempSync(path.join(tmpdir(), 'sidecar-approle-'));
  writeFileSync(path.join(dir, 'secret-id'), secret.data.secret_id, { mode: 0o600 });
  return { method: 'approle', mount: vault.approleMount, roleId: vault.approleRoleId, secretIdFile: path.join(dir, 'secret-id') };
}
