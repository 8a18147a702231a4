/**
 * `vault-mtls-sidecar vault setup` as an operator runs it, against a private Vault dev server: the
 * plan printed with --dry-run, the run, a second run with nothing to do, and clear usage errors.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { spawnCli } from '../support/cli.js';
import { type DevServer, startDevServer } from '../support/dev-server.js';

const vault = inject('vault');
let server: DevServer;

beforeAll(async () => {
  server = await startDevServer(vault.bin);
}, 30_000);

afterAll(async () => {
  await server?.stop();
});

async function cli(args: string[], env: Record<string, string> = { VAULT_ADDR: server.address, VAULT_TOKEN: 'root' }) {
  const run = spawnCli(['vault', 'setup', ...args], env);
  const code = await run.exited;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

it('plans, applies, and then has nothing to do, for every service in a file', async () => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'sidecar-vault-setup-')), 'services.yaml');
  writeFileSync(file, '- { name: orders, namespace: shop }\n- { name: payments, namespace: shop, serviceAccount: payments-api }\n');
  const dry = await cli(['--file', file, '--dry-run']);
  expect(dry.code).toBe(0);
  expect(dry.stdout).toContain(`vault setup: orders (shop/orders) on ${server.address} — dry run, nothing written`);
  expect(dry.stdout).toMatch(/^ {2}\+ create {4}pki_int\/roles\/payments$/m);

  const applied = await cli(['--file', file]);
  expect(applied.code).toBe(0);
  expect(applied.stdout).toMatch(/^ {2}\+ create {4}auth\/kubernetes\/role\/payments$/m);

  const again = await cli(['--file', file]);
  expect(again.code).toBe(0);
  expect(again.stdout.match(/0 to create, 0 to update, 11 unchanged/g)).toHaveLength(2);
});

it('says what is missing, one line and a code', async () => {
  const noService = await cli([]);
  expect(noService.code).toBe(1);
  expect(noService.stderr.trim()).toBe('✖ vault setup: name a --service or a --file of services [SIDECAR_USAGE]');
  const noToken = await cli(['--service', 'orders'], { VAULT_ADDR: server.address });
  expect(noToken.stderr.trim()).toBe(
    '✖ vault setup: set VAULT_TOKEN to a token that may mount secrets engines and write policies [SIDECAR_USAGE]',
  );
  // A dry run too: a plan it could not read is no plan.
  const deniedDry = await cli(['--service', 'orders', '--dry-run'], { VAULT_ADDR: server.address, VAULT_TOKEN: 'not-a-token' });
  expect(deniedDry.code).toBe(1);
  expect(deniedDry.stderr).toContain('[SIDECAR_VAULT_PERMISSION_DENIED]');
  const denied = await cli(['--service', 'orders'], { VAULT_ADDR: server.address, VAULT_TOKEN: 'not-a-token' });
  expect(denied.code).toBe(1);
  expect(denied.stderr.trim()).toBe(
    '✖ vault setup: GET sys/mounts: 403 permission denied; invalid token; VAULT_TOKEN needs a token that may mount secrets engines and write policies and auth roles [SIDECAR_VAULT_PERMISSION_DENIED]',
  );
});
