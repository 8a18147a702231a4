/**
 * `vault-mtls-sidecar vault setup` as an operator runs it, against a private Vault dev server: the
 * plan printed with --dry-run, the run, a second run with nothing to do, clear usage errors, and
 * names an earlier version made without the namespace reported and left alone.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { spawnCli } from '../support/cli.js';
import { type DevServer, startDevServer } from '../support/dev-server.js';
import { vaultApi } from '../support/vault-api.js';

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
  expect(dry.stdout).toMatch(/^ {2}\+ create {4}pki_int\/roles\/payments\.shop$/m);

  const applied = await cli(['--file', file]);
  expect(applied.code).toBe(0);
  expect(applied.stdout).toMatch(/^ {2}\+ create {4}auth\/kubernetes\/role\/payments\.shop$/m);

  const again = await cli(['--file', file]);
  expect(again.code).toBe(0);
  // Every step unchanged, however many steps setup has.
  expect(again.stdout.match(/ {2}0 to create, 0 to update, \d+ unchanged\n/g), again.stdout).toHaveLength(2);
  expect(again.stdout).not.toMatch(/^ {2}[+~!] /m);
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

it('refuses a service or namespace that is not a DNS label before writing anything', async () => {
  const dotted = await cli(['--service', 'orders.shop', '--namespace', 'dev']);
  expect(dotted.code).toBe(1);
  expect(dotted.stderr.trim()).toBe(
    '✖ vault setup: service "orders.shop" is not a DNS label (lowercase letters, digits and -, at most 63), as Kubernetes names are [SIDECAR_USAGE]',
  );
});

it('reports the names an earlier version gave a service without its namespace, and never rewrites them', async () => {
  const vault = { address: server.address, rootToken: 'root' };
  // The mounts, then what an earlier vault setup wrote for billing in shop: its role, policy and
  // auth role named after the service alone.
  expect((await cli(['--service', 'setup-mounts', '--namespace', 'shop'])).code).toBe(0);
  const oldRole = {
    allowed_domains: ['billing', 'billing.shop', 'billing.shop.svc', 'billing.shop.svc.cluster.local'],
    allow_bare_domains: true,
    allowed_uri_sans: ['spiffe://cluster.local/ns/shop/sa/billing'],
    no_store: true,
  };
  await vaultApi(vault, 'POST', 'pki_int/roles/billing', oldRole);
  await vaultApi(vault, 'PUT', 'sys/policies/acl/billing-sidecar', {
    policy:
      '# vault-mtls-sidecar: what the billing sidecar may do (written by vault-mtls-sidecar vault setup)\npath "pki_int/sign/billing" {\n  capabilities = ["update"]\n}\n',
  });
  await vaultApi(vault, 'POST', 'auth/kubernetes/role/billing', {
    bound_service_account_names: ['billing'],
    bound_service_account_namespaces: ['shop'],
    audience: 'vault',
    token_policies: ['billing-sidecar'],
  });
  const read = async () =>
    JSON.stringify(
      await Promise.all(
        ['pki_int/roles/billing', 'sys/policies/acl/billing-sidecar', 'auth/kubernetes/role/billing'].map(
          async (p) => (await vaultApi<{ data: unknown }>(vault, 'GET', p)).data,
        ),
      ),
    );
  const before = await read();

  // billing in dev: its own names are made; shop's old ones are reported, not rebound to dev.
  const dev = await cli(['--service', 'billing', '--namespace', 'dev']);
  expect(dev.code).toBe(0);
  expect(dev.stdout).toMatch(/^ {2}\+ create {4}auth\/kubernetes\/role\/billing\.dev$/m);
  expect(dev.stdout).toContain('  ! old name  pki_int/roles/billing (names billing in namespace shop; left unchanged)\n');
  expect(dev.stdout).toContain('  ! old name  sys/policies/acl/billing-sidecar (grants pki_int/sign/billing; left unchanged)\n');
  expect(dev.stdout).toContain('  ! old name  auth/kubernetes/role/billing (bound to namespace shop; left unchanged)\n');
  expect(dev.stdout).toMatch(/^ {2}3 to create, 0 to update, \d+ unchanged, 3 old names to retire$/m);
  expect(dev.stdout.match(/^ {2}\+ create {4}(.*)$/gm)).toEqual([
    '  + create    pki_int/roles/billing.dev',
    '  + create    sys/policies/acl/billing.dev-sidecar',
    '  + create    auth/kubernetes/role/billing.dev',
  ]);
  const warning = dev.stderr.trim();
  expect(warning.split('\n')).toHaveLength(1);
  expect(warning).toMatch(/^⚠ vault setup: billing \(dev\): Vault still has names without a namespace/);
  expect(warning).toContain(
    'once no sidecar uses the old names, delete them: vault delete pki_int/roles/billing; vault policy delete billing-sidecar; vault delete auth/kubernetes/role/billing',
  );
  // The old names serve billing in shop: shop's sidecars go to shop's own names, not dev's.
  expect(warning).toContain('"billing.shop" for namespace shop (run vault setup for billing in shop first');
  expect(warning).toMatch(/\[SIDECAR_VAULT_SETUP_OLD_NAMES\]$/);
  expect(await read()).toBe(before);
  const bound = await vaultApi<{ data: { bound_service_account_namespaces: string[]; token_policies: string[] } }>(
    vault,
    'GET',
    'auth/kubernetes/role/billing.dev',
  );
  expect(bound.data).toMatchObject({ bound_service_account_namespaces: ['dev'], token_policies: ['billing.dev-sidecar'] });

  // A dry run reports them too, and once they are deleted the warning is gone.
  expect((await cli(['--service', 'billing', '--namespace', 'shop', '--dry-run'])).stderr).toContain('[SIDECAR_VAULT_SETUP_OLD_NAMES]');
  for (const p of ['pki_int/roles/billing', 'sys/policies/acl/billing-sidecar', 'auth/kubernetes/role/billing']) {
    await vaultApi(vault, 'DELETE', p);
  }
  const clean = await cli(['--service', 'billing', '--namespace', 'dev']);
  expect(clean.stderr).toBe('');
  expect(clean.stdout).toMatch(/^ {2}0 to create, 0 to update, \d+ unchanged$/m);
});
