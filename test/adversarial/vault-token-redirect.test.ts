/**
 * Issue 24, defect 8: the Vault token followed redirects to other origins. node-vault ignores
 * maxRedirects, and a 307 to another port received X-Vault-Token and the login body (an AppRole
 * secret_id, a service-account JWT). Whoever answers for VAULT_ADDR with a redirect — a
 * compromised node, a proxy, a DNS entry — collected both. Now a redirect is followed only within
 * Vault's origin (or to an HA node listed in vault.redirectOrigins); anything else is refused with
 * SIDECAR_VAULT_REDIRECT_REFUSED and nothing is sent there. DEBUG=node-vault prints no secret.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { waitFor } from '../support/cli.js';
import { approleAuth } from '../support/fixtures.js';
import { issueFromVault } from '../support/sidecars.js';
import { startVaultProxy, type VaultProxy } from '../support/vault-proxy.js';
import { type RecordingApp, startRecordingApp } from './harness.js';
import { startVaultSidecar, type VaultSidecar } from './vault-sidecar.js';

const vault = inject('vault');

/** Where the redirects point: records everything sent to it, answers like a Vault would. */
interface Collector {
  readonly origin: string;
  readonly received: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }[];
  close(): void;
}

async function startCollector(): Promise<Collector> {
  const received: Collector['received'] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ auth: { client_token: 'collected', lease_duration: 3600, renewable: true } }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

let app: RecordingApp;
let collector: Collector;
const proxies: VaultProxy[] = [];

beforeAll(async () => {
  app = await startRecordingApp();
  collector = await startCollector();
});
afterAll(() => {
  app.close();
  collector.close();
  for (const proxy of proxies) proxy.close();
});

async function front(): Promise<VaultProxy> {
  const proxy = await startVaultProxy(vault.address);
  proxies.push(proxy);
  return proxy;
}

const refusal = (sidecar: VaultSidecar) => sidecar.logs().find((l) => l.code === 'SIDECAR_VAULT_REDIRECT_REFUSED');

async function startWith(
  address: string,
  auth: Record<string, string>,
  extra: Record<string, unknown> = {},
  env: Record<string, string> = {},
) {
  return startVaultSidecar({
    vault: { address, auth, pki: { mount: vault.pkiMount, role: vault.role }, ...extra },
    env,
    adminOnly: true,
    inbound: [{ name: 'web', target: `127.0.0.1:${app.port}` }],
  });
}

describe('a redirect to another origin', () => {
  it('does not get the AppRole login body: the login is refused and nothing reaches the other origin', async () => {
    const proxy = await front();
    proxy.redirect(/\/login/, (path) => `${collector.origin}${path}`);
    const auth = await approleAuth(vault);
    const secretId = readFileSync(auth.secretIdFile ?? '', 'utf8');
    const sidecar = await startWith(proxy.address, auth, {}, { DEBUG: 'node-vault' });
    await waitFor(() => refusal(sidecar) !== undefined, 15_000, 'the refused redirect in the log');

    expect(collector.received).toEqual([]);
    expect(String(refusal(sidecar)?.msg)).toContain(`redirected to ${collector.origin}, which is not Vault's origin`);
    expect(sidecar.run.stdout() + sidecar.run.stderr()).not.toContain(secretId);
    expect((await sidecar.readyz()).status).toBe(503);
    await sidecar.assertAlive();
  });

  it('does not get the token: a redirected certificate request is refused, nothing reaches the other origin', async () => {
    const proxy = await front();
    proxy.redirect(/\/sign\//, (path) => `${collector.origin}${path}`);
    const sidecar = await startWith(proxy.address, { method: 'token' }, {}, { VAULT_TOKEN: vault.rootToken, DEBUG: 'node-vault' });
    await waitFor(() => refusal(sidecar) !== undefined, 15_000, 'the refused redirect in the log');

    expect(collector.received).toEqual([]);
    expect((await sidecar.readyz()).status).toBe(503);
    expect(app.requests).toEqual([]);
    await sidecar.assertAlive();
  });
});

describe('the legitimate redirects still work', () => {
  it('a standby redirecting within its own origin: the login and the certificate go through, clients are served', async () => {
    const proxy = await front();
    proxy.redirect(/^\/v1\//, (path) => `/active${path}`);
    const sidecar = await startWith(proxy.address, await approleAuth(vault));
    await waitFor(async () => (await sidecar.readyz()).status === 200, 15_000, 'readiness');
    expect(proxy.seen.some((line) => line.includes('/active/v1/auth/'))).toBe(true);
    const client = await issueFromVault(vault, 'client.test', ['spiffe://test/ns/default/sa/client']);
    expect((await sidecar.get('web', client, vault.caPem)).status).toBe(200);
    expect(collector.received).toEqual([]);
    await sidecar.assertAlive();
  });

  it('a standby redirecting to an active node listed in vault.redirectOrigins', async () => {
    const standby = await front();
    const active = await front();
    standby.redirect(/^\/v1\//, (path) => `${active.address}${path}`);
    const sidecar = await startWith(standby.address, await approleAuth(vault), { redirectOrigins: [active.address] });
    await waitFor(async () => (await sidecar.readyz()).status === 200, 15_000, 'readiness');
    expect(active.seen.some((line) => line.includes('/v1/auth/'))).toBe(true);
    await sidecar.assertAlive();
  });
});
