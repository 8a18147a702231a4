/**
 * Revocation with the roles `vault setup` makes (no_store=true: Vault keeps no copy, so a serial
 * alone revokes nothing): the built CLI with `revokeOnShutdown.certificate` and a token holding
 * only the policy setup wrote revokes its certificate on SIGTERM, and the manual command of
 * docs/vault-setup.md ("Revoking a certificate") — run as written, with the vault CLI, curl and
 * jq — revokes a running sidecar's certificate.
 * Both are checked in the mount's CRL.
 */
import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { X509Crl } from '@peculiar/x509';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { loggedPort, type Spawned, spawnCli, waitFor } from '../support/cli.js';
import { type DevServer, startDevServer } from '../support/dev-server.js';
import { vaultApi } from '../support/vault-api.js';

const vault = inject('vault');
const dir = mkdtempSync(path.join(tmpdir(), 'sidecar-revocation-'));
const VAULT_SETUP_DOC = path.resolve(import.meta.dirname, '../../docs/vault-setup.md');
let server: DevServer;
let target: { address: string; rootToken: string };
/** A token with only the policy `vault setup` wrote for orders in shop. */
let sidecarToken: string;
const running: Spawned[] = [];

beforeAll(async () => {
  server = await startDevServer(vault.bin);
  target = { address: server.address, rootToken: 'root' };
  const setup = spawnCli(['vault', 'setup', '--service', 'orders', '--namespace', 'shop'], {
    VAULT_ADDR: server.address,
    VAULT_TOKEN: 'root',
  });
  expect(await setup.exited, setup.stderr()).toBe(0);
  const role = await vaultApi<{ data: { no_store: boolean } }>(target, 'GET', 'pki_int/roles/orders.shop');
  expect(role.data.no_store).toBe(true);
  sidecarToken = (
    await vaultApi<{ auth: { client_token: string } }>(target, 'POST', 'auth/token/create', {
      policies: ['orders.shop-sidecar'],
      ttl: '1h',
    })
  ).auth.client_token;
}, 60_000);

afterAll(async () => {
  for (const run of running) run.child.kill('SIGKILL');
  await server?.stop();
});

/** The built CLI running as orders in shop, with the setup role; its admin port once ready. */
async function startOrders(name: string, revokeOnShutdown: boolean): Promise<{ run: Spawned; admin: number }> {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `vault:
  pki: { mount: pki_int, role: orders.shop }
  auth: { method: token }
  revokeOnShutdown: { certificate: ${revokeOnShutdown} }
identity:
  commonName: orders.shop.svc
  dnsNames: [orders, orders.shop, orders.shop.svc, orders.shop.svc.cluster.local]
  uriSans: ["spiffe://cluster.local/ns/shop/sa/orders"]
  ttl: 10m
inbound: [{ name: app, listen: "127.0.0.1:0", target: "127.0.0.1:9" }]
admin: { listen: "127.0.0.1:0" }
shutdownDelay: 0s
drainTimeout: 2s
`,
  );
  const run = spawnCli(['run', '--config', file], { VAULT_ADDR: server.address, VAULT_TOKEN: sidecarToken });
  running.push(run);
  const admin = await loggedPort(run, 'admin server ready');
  await waitFor(
    async () => (await fetch(`http://127.0.0.1:${admin}/readyz`).catch(() => undefined))?.status === 200,
    15_000,
    () => `/readyz (stderr: ${run.stderr()})`,
  );
  return { run, admin };
}

async function certs(admin: number): Promise<{ serial: string; certificate: string }> {
  return (await (await fetch(`http://127.0.0.1:${admin}/certs`)).json()) as { serial: string; certificate: string };
}

/** The serials on the mount's CRL, in the form /certs shows (colon-separated lowercase hex). */
async function revokedSerials(): Promise<string[]> {
  const crl = await vaultApi<{ data: { certificate: string } }>(target, 'GET', 'pki_int/cert/crl');
  const hex = (s: string) =>
    s
      .toLowerCase()
      .replace(/[^0-9a-f]/g, '')
      .replace(/^0+/, '');
  return new X509Crl(crl.data.certificate).entries.map((e) => hex(e.serialNumber));
}
const bare = (serial: string) => serial.replace(/:/g, '').replace(/^0+/, '');

it('revokes its certificate on SIGTERM with a vault setup role and policy: the serial is on the CRL', async () => {
  const { run, admin } = await startOrders('revoke-on-shutdown', true);
  const { serial } = await certs(admin);
  expect(await revokedSerials()).not.toContain(bare(serial));

  run.child.kill('SIGTERM');
  expect(await run.exited, run.stderr()).toBe(0);
  expect(run.stdout()).not.toContain('SIDECAR_SHUTDOWN_REVOKE_FAILED');
  expect(await revokedSerials(), run.stdout()).toContain(bare(serial));
}, 60_000);

it("revokes a running sidecar's certificate with the command in docs/vault-setup.md, where its serial revokes nothing", async () => {
  const { run, admin } = await startOrders('manual', false);
  const { serial, certificate } = await certs(admin);
  expect(certificate).toMatch(/^-----BEGIN CERTIFICATE-----/);
  // The vault CLI as docs/vault-setup.md runs it: the server binary under the name `vault`.
  const bin = path.join(dir, 'bin');
  execFileSync('mkdir', ['-p', bin]);
  symlinkSync(vault.bin, path.join(bin, 'vault'));
  const env = { PATH: `${bin}:${process.env.PATH ?? ''}`, HOME: dir, VAULT_ADDR: server.address, VAULT_TOKEN: 'root' };

  // What the docs used to say: by serial. Vault keeps no copy of a no_store certificate.
  expect(() =>
    execFileSync('vault', ['write', 'pki_int/revoke', `serial_number=${serial}`], { env, stdio: ['ignore', 'pipe', 'pipe'] }),
  ).toThrow(/certificate with serial .* not found/);

  const command = readFileSync(VAULT_SETUP_DOC, 'utf8')
    .split('\n')
    .find((line) => /^curl -s localhost:15000\/certs \|.*vault write pki_int\/revoke/.test(line));
  expect(command, 'docs/vault-setup.md gives the manual revocation command').toBeDefined();
  execFileSync('bash', ['-o', 'pipefail', '-c', (command ?? '').replace('localhost:15000', `127.0.0.1:${admin}`)], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  expect(await revokedSerials()).toContain(bare(serial));
  run.child.kill('SIGTERM');
  expect(await run.exited, run.stderr()).toBe(0);
}, 60_000);
