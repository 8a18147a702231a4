/**
 * Identity that survives what Vault throws at it, each against a private dev server this file may
 * stop, restart or tamper with: an outage longer than a renewal attempt, a token revoked behind the
 * sidecar's back, and a PKI role that refuses the requested name.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { afterAll, expect, inject, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import { Sidecar } from '../../src/sidecar.js';
import type { VaultPkiSource } from '../../src/vault/pki.js';
import { waitFor } from '../support/cli.js';
import { type DevServer, startDevServer } from '../support/dev-server.js';
import { approleAuth, useEchoApp, usePrivateVaults } from '../support/fixtures.js';
import { capturingLogger } from '../support/logs.js';
import { parsePrometheus, sampleValue } from '../support/prometheus.js';
import { httpGet, httpsRequest, issueFromVault, startSidecar } from '../support/sidecars.js';
import { vaultApi } from '../support/vault-api.js';
import { configureTestVault } from '../support/vault-setup.js';

const shared = inject('vault');
const echo = useEchoApp();
const privateVault = usePrivateVaults(shared.bin);
const servers: DevServer[] = [];

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

async function metric(sidecar: Sidecar, name: string, labels: Record<string, string>): Promise<number> {
  return sampleValue(parsePrometheus(await sidecar.metrics.text()), name, labels) ?? 0;
}

it('keeps serving through a Vault outage, backs off, and renews once Vault is back', { timeout: 90_000 }, async () => {
  const { server, vault } = await privateVault();
  const sidecar = await startSidecar(
    {
      vault: { address: vault.address, pki: { mount: vault.pkiMount, role: vault.role }, requestTimeout: '2s' },
      identity: {
        commonName: 'outage.test',
        dnsNames: ['localhost'],
        ttl: '30s',
        renewal: { outageBudget: '0s', minBackoff: '200ms', maxBackoff: '2s' },
      },
      inbound: [{ name: 'app', listen: '127.0.0.1:0', target: `127.0.0.1:${echo.port()}` }],
      // A 30 s certificate leaves little validity during the outage; stay ready down to 1 s of it.
      admin: { listen: '127.0.0.1:0', readyMinValidity: '1s' },
    },
    { VAULT_TOKEN: 'root' },
  );
  const port = sidecar.listenerAddress('app').port;
  const admin = sidecar.admin.address()?.port ?? 0;
  const client = await issueFromVault(vault, 'during-outage.test');
  const firstSerial = sidecar.store.current()?.info.serial;

  await server.stop();
  const outageStarted = Date.now();
  // The first renewal comes 15–21 s after issue; let it and a few retries fail.
  await waitFor(async () => (await metric(sidecar, 'sidecar_cert_renewals_total', { result: 'failure' })) >= 3, 40_000, 'failed renewals');
  await new Promise((r) => setTimeout(r, 3000));
  const failuresDuringOutage = await metric(sidecar, 'sidecar_cert_renewals_total', { result: 'failure' });
  const firstFailureWindow = (Date.now() - outageStarted) / 1000;

  // Still serving the old certificate, still ready.
  const during = await httpsRequest(port, client);
  expect(during.status).toBe(200);
  expect(sidecar.store.current()?.info.serial).toBe(firstSerial);
  expect(JSON.parse((await httpGet(admin, '/readyz')).body)).toEqual({ ready: true, reasons: [] });
  // Backoff, not a storm: attempts grow far slower than one per 200 ms.
  expect(failuresDuringOutage).toBeGreaterThanOrEqual(3);
  expect(failuresDuringOutage).toBeLessThan(firstFailureWindow * 2);

  // Vault comes back (a dev server starts empty, so it is set up again, with a new CA).
  await privateVault(server.port);
  await waitFor(() => sidecar.store.current()?.info.serial !== firstSerial, 20_000, 'the renewal after the outage');
  expect(await metric(sidecar, 'sidecar_cert_renewals_total', { result: 'success' })).toBe(2);
});

it('logs in again when its token is revoked behind its back', async () => {
  const { vault } = await privateVault();
  const sidecar = await startSidecar({
    vault: { address: vault.address, pki: { mount: vault.pkiMount, role: vault.role }, auth: await approleAuth(vault) },
    identity: { commonName: 'revoked.test', ttl: '10m' },
  });
  const firstSerial = sidecar.store.current()?.info.serial;

  // Every token the AppRole mount has handed out, revoked.
  await vaultApi(vault, 'PUT', `sys/leases/revoke-prefix/auth/${vault.approleMount}/login`);
  expect(sidecar.renewer.renewNow()).toBe(true);
  await waitFor(() => sidecar.store.current()?.info.serial !== firstSerial, 10_000, 'the renewal with a new token');

  expect(await metric(sidecar, 'sidecar_vault_request_duration_seconds_count', { operation: 'issue', status: '403' })).toBe(1);
  expect(await metric(sidecar, 'sidecar_vault_request_duration_seconds_count', { operation: 'login', status: '200' })).toBe(2);
  expect(await metric(sidecar, 'sidecar_cert_renewals_total', { result: 'failure' })).toBe(0);
});

it('reports a role that refuses the requested name in one line with a code, stays up and not ready, without a retry storm', async () => {
  const { logger, lines } = capturingLogger();
  const config = buildConfig(
    {
      vault: { address: shared.address, pki: { mount: shared.pkiMount, role: shared.role } },
      identity: {
        commonName: 'greedy.test',
        uriSans: ['spiffe://elsewhere/ns/default/sa/greedy'],
        renewal: { minBackoff: '100ms', maxBackoff: '2s' },
      },
      admin: { listen: '127.0.0.1:0' },
    },
    { VAULT_TOKEN: shared.rootToken },
  );
  const sidecar = await Sidecar.create(config, logger);
  const starting = sidecar.start();
  await waitFor(() => sidecar.admin.address() !== undefined, 2000, 'the admin server');
  await new Promise((r) => setTimeout(r, 4000));

  const failures = lines.filter((l) => l.code === 'SIDECAR_PKI_ISSUE_REJECTED');
  // One attempt at once, then retries 1–2 s apart (the slow end of the backoff): at most 5 in 4 s.
  expect(failures.length).toBeGreaterThanOrEqual(2);
  expect(failures.length).toBeLessThanOrEqual(5);
  expect(failures[0]?.msg).toMatch(
    /^certificate renewal failed: vault: issue from pki-sidecar-test\/sign\/test-service: rejected \(.*URI.*\); check that the PKI role allows/,
  );
  const ready = await httpGet(sidecar.admin.address()?.port ?? 0, '/readyz');
  expect(ready.status).toBe(503);
  await sidecar.stop(0);
  await starting;
});

it('revokes its last certificate and its token on a clean shutdown when asked to', async () => {
  const sidecar = await startSidecar({
    vault: {
      address: shared.address,
      pki: { mount: shared.pkiMount, role: shared.role },
      auth: await approleAuth(shared),
      revokeOnShutdown: { certificate: true, token: true },
    },
    identity: { commonName: 'leaving.test', ttl: '10m' },
  });
  const serial = sidecar.store.current()?.info.serial ?? '';
  const token = (sidecar.source as VaultPkiSource).session.client.token;
  const before = await vaultApi<{ data: { revocation_time: number } }>(shared, 'GET', `${shared.pkiMount}/cert/${serial}`);
  expect(before.data.revocation_time).toBe(0);

  await sidecar.stop(100);

  const after = await vaultApi<{ data: { revocation_time: number } }>(shared, 'GET', `${shared.pkiMount}/cert/${serial}`);
  expect(after.data.revocation_time).toBeGreaterThan(0);
  await expect(vaultApi(shared, 'GET', 'auth/token/lookup-self', undefined, token)).rejects.toThrow(/403/);
});

it('talks to Vault over TLS with VAULT_CACERT, and says what to set when the CA is missing', async () => {
  const server = await startDevServer(shared.bin, undefined, { tls: true });
  servers.push(server);
  const caFile = server.caFile ?? '';
  const vault = await configureTestVault(server.address, 'root', { bin: shared.bin, tlsCaPem: readFileSync(caFile, 'utf8') });
  const raw = {
    vault: { pki: { mount: vault.pkiMount, role: vault.role } },
    identity: { commonName: 'tls-vault.test', ttl: '10m' },
    admin: { listen: '127.0.0.1:0' },
  };
  const sidecar = await startSidecar(raw, { VAULT_ADDR: server.address, VAULT_CACERT: caFile, VAULT_TOKEN: 'root' });
  expect(sidecar.store.current()?.info.subject).toContain('CN=tls-vault.test');

  const { logger, lines } = capturingLogger();
  const untrusting = await Sidecar.create(buildConfig(raw, { VAULT_ADDR: server.address, VAULT_TOKEN: 'root' }), logger);
  const starting = untrusting.start();
  await waitFor(() => lines.some((l) => l.code === 'SIDECAR_VAULT_UNREACHABLE'), 5000, 'the TLS failure');
  const line = lines.find((l) => l.code === 'SIDECAR_VAULT_UNREACHABLE') as { msg: string };
  expect(line.msg).toMatch(/TLS to https:\/\/127\.0\.0\.1:\d+ failed \(\w+\); set VAULT_CACERT to the CA of Vault's certificate/);
  await untrusting.stop(0);
  await starting;
});

it('follows a Vault HA standby redirect to an active node listed in vault.redirectOrigins', async () => {
  // A standby answers every request with 307 to the active node, as Vault HA does. The active
  // node is another origin, so it must be listed (see test/adversarial/vault-token-redirect.test.ts).
  let redirected = 0;
  const standby = createServer((req, res) => {
    redirected++;
    res.writeHead(307, { location: `${shared.address}${req.url}` });
    res.end();
  });
  await new Promise<void>((resolve) => standby.listen(0, '127.0.0.1', resolve));
  try {
    const sidecar = await startSidecar(
      {
        vault: { pki: { mount: shared.pkiMount, role: shared.role }, redirectOrigins: [shared.address] },
        identity: { commonName: 'ha.test', ttl: '10m' },
      },
      { VAULT_ADDR: `http://127.0.0.1:${(standby.address() as { port: number }).port}`, VAULT_TOKEN: shared.rootToken },
    );
    expect(sidecar.store.current()?.info.subject).toContain('CN=ha.test');
    expect(redirected).toBeGreaterThanOrEqual(2);
  } finally {
    standby.closeAllConnections();
    standby.close();
  }
});
