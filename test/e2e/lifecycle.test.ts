/**
 * Graceful shutdown of the built CLI: SIGTERM during a slow request lets it finish, refuses new
 * connections, turns /readyz false, and exits 0 within the grace period; with shutdownDelay it keeps
 * accepting that long first; a second signal exits at once.
 */

import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { loggedPort, spawnCli, waitFor } from '../support/cli.js';
import { freePort } from '../support/ports.js';
import { httpsRequest, issueFromVault } from '../support/sidecars.js';

const vault = inject('vault');
let slowApp: http.Server;
let slowPort: number;

beforeAll(async () => {
  // Answers after the delay the request asks for.
  slowApp = http.createServer((req, res) => {
    const delay = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('delay') ?? 0);
    setTimeout(() => res.end('done'), delay);
  });
  await new Promise<void>((resolve) => slowApp.listen(0, '127.0.0.1', resolve));
  slowPort = (slowApp.address() as { port: number }).port;
});

afterAll(() => {
  slowApp.closeAllConnections();
  slowApp.close();
});

async function startCli(drainTimeout: string, shutdownDelay = '0s', adminListen = '127.0.0.1:0') {
  const dir = mkdtempSync(path.join(tmpdir(), 'sidecar-lifecycle-'));
  const file = path.join(dir, 'config.yaml');
  writeFileSync(
    file,
    `vault: { pki: { mount: ${vault.pkiMount}, role: ${vault.role} } }
identity: { commonName: drain.test, dnsNames: [localhost], ttl: 10m }
inbound: [{ name: app, listen: "127.0.0.1:0", target: "127.0.0.1:${slowPort}" }]
admin: { listen: "${adminListen}" }
drainTimeout: ${drainTimeout}
shutdownDelay: ${shutdownDelay}
`,
  );
  const run = spawnCli(['run', '--config', file], { VAULT_ADDR: vault.address, VAULT_TOKEN: vault.rootToken });
  const admin = await loggedPort(run, 'admin server ready');
  const readyz = async () => {
    try {
      return (await fetch(`http://127.0.0.1:${admin}/readyz`)).status;
    } catch {
      return 0;
    }
  };
  await waitFor(
    async () => (await readyz()) === 200,
    15_000,
    () => `/readyz (stderr: ${run.stderr()})`,
  );
  const inbound = await loggedPort(run, 'inbound listener ready');
  const serial = async () => ((await (await fetch(`http://127.0.0.1:${admin}/certs`)).json()) as { serial: string }).serial;
  return { run, inbound, readyz, serial };
}

it('finishes a slow request on SIGTERM, refuses new connections, and exits 0 within the grace period', async () => {
  const { run, inbound, readyz } = await startCli('10s');
  const client = await issueFromVault(vault, 'patient.test');
  const slow = httpsRequest(inbound, { ...client, path: '/?delay=2000' });
  await new Promise((r) => setTimeout(r, 300));

  const signalledAt = Date.now();
  run.child.kill('SIGTERM');
  await waitFor(async () => (await readyz()) === 503, 1000, '/readyz to turn false during the drain');
  await expect(httpsRequest(inbound, client)).rejects.toMatchObject({ code: 'ECONNREFUSED' });

  const res = await slow;
  expect(res.status).toBe(200);
  expect(res.body).toBe('done');
  expect(await run.exited).toBe(0);
  expect(Date.now() - signalledAt).toBeLessThan(10_000);
  expect(run.stdout()).toContain('"msg":"stopped"');
});

it('keeps accepting for shutdownDelay after SIGTERM with /readyz already 503, then drains', async () => {
  const { run, inbound, readyz } = await startCli('10s', '2s');
  const client = await issueFromVault(vault, 'late-caller.test');
  const signalledAt = Date.now();
  run.child.kill('SIGTERM');
  await waitFor(async () => (await readyz()) === 503, 1000, '/readyz to turn false at SIGTERM');
  // A peer that has not yet seen the endpoint go: its new connection is still served.
  const late = await httpsRequest(inbound, { ...client, path: '/?delay=100' });
  expect(late.status).toBe(200);
  expect(Date.now() - signalledAt).toBeLessThan(2000);
  // After the delay, the drain: new connections are refused, and the process exits 0.
  await waitFor(
    async () =>
      httpsRequest(inbound, client).then(
        () => false,
        (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED',
      ),
    5000,
    'new connections refused once shutdownDelay is over',
  );
  expect(Date.now() - signalledAt).toBeGreaterThanOrEqual(2000);
  expect(await run.exited).toBe(0);
});

it('exits at once with code 1 on a second signal during shutdownDelay', async () => {
  const { run, readyz } = await startCli('10s', '30s');
  run.child.kill('SIGTERM');
  await waitFor(async () => (await readyz()) === 503, 1000, '/readyz to turn false at SIGTERM');
  const second = Date.now();
  run.child.kill('SIGTERM');
  expect(await run.exited).toBe(1);
  expect(Date.now() - second).toBeLessThan(3000);
});

it('exits at once with code 1 on a second signal, abandoning the drain', async () => {
  const { run, inbound } = await startCli('30s');
  const client = await issueFromVault(vault, 'impatient.test');
  const slow = httpsRequest(inbound, { ...client, path: '/?delay=20000' }).catch((err: unknown) => err);
  await new Promise((r) => setTimeout(r, 300));
  run.child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  run.child.kill('SIGTERM');
  expect(await run.exited).toBe(1);
  expect(await slow).toBeInstanceOf(Error);
});

it('renews the certificate on SIGHUP', async () => {
  const { run, serial } = await startCli('5s');
  const before = await serial();
  run.child.kill('SIGHUP');
  await waitFor(async () => (await serial()) !== before, 10_000, 'a new serial after SIGHUP');
  run.child.kill('SIGTERM');
  expect(await run.exited).toBe(0);
});

it('wait-ready holds until the sidecar is ready, and fails naming what it last saw', async () => {
  const adminPort = await freePort();
  const waiting = spawnCli(['wait-ready', '--admin', `127.0.0.1:${adminPort}`, '--timeout', '30']);
  await new Promise((r) => setTimeout(r, 700));
  expect(waiting.child.exitCode).toBeNull(); // nothing answers yet: still waiting
  const { run } = await startCli('5s', '0s', `127.0.0.1:${adminPort}`);
  expect(await waiting.exited).toBe(0);
  run.child.kill('SIGTERM');
  expect(await run.exited).toBe(0);

  const failing = spawnCli(['wait-ready', '--admin', `127.0.0.1:${await freePort()}`, '--timeout', '1']);
  expect(await failing.exited).toBe(1);
  expect(failing.stderr()).toMatch(
    /not ready within 1s; last: cannot reach http:\/\/127\.0\.0\.1:\d+\/readyz \(ECONNREFUSED\).*\[SIDECAR_STARTUP_TIMEOUT\]/,
  );
});
