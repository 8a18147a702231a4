/**
 * A Vault that answers with headers and then trickles its body (an overloaded node, a broken
 * proxy) used to keep a renewal in flight forever, silently. Each call now has one deadline
 * (vault.requestTimeout) for headers and body; it fails as a timeout, is logged as one, and the
 * renewer retries on its backoff.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loggedPort, type Spawned, spawnCli, waitFor } from '../support/cli.js';

let vault: http.Server;
let run: Spawned;
let requests = 0;

beforeAll(async () => {
  vault = http.createServer((_req, res) => {
    requests++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{');
    const trickle = setInterval(() => res.write(' '), 200);
    res.on('close', () => clearInterval(trickle));
  });
  await new Promise<void>((resolve) => vault.listen(0, '127.0.0.1', resolve));
  const dir = mkdtempSync(path.join(tmpdir(), 'sidecar-hang-'));
  const file = path.join(dir, 'config.yaml');
  writeFileSync(
    file,
    `
vault:
  requestTimeout: 1s
  pki: { role: web }
identity:
  commonName: hang.test
  renewal: { minBackoff: 1s, maxBackoff: 2s }
admin:
  listen: 127.0.0.1:0
log:
  format: json
`,
  );
  run = spawnCli(['run', '--config', file], { VAULT_ADDR: `http://127.0.0.1:${(vault.address() as AddressInfo).port}`, VAULT_TOKEN: 'x' });
});

afterAll(() => {
  run.child.kill('SIGKILL');
  vault.closeAllConnections();
  vault.close();
});

it('fails a trickling call at its deadline, logs it as a timeout, and retries on the backoff', async () => {
  const admin = await loggedPort(run, 'admin server ready');
  await waitFor(
    () => requests >= 3,
    15_000,
    () => `three attempts (stdout: ${run.stdout().slice(-2000)})`,
  );
  const timeouts = run
    .stdout()
    .split('\n')
    .filter((l) => l.includes('timed out (no complete answer within 1s)'));
  expect(timeouts.length).toBeGreaterThan(0);
  expect(timeouts[0]).toContain('SIDECAR_VAULT_UNREACHABLE');
  const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  expect(metrics).toMatch(/sidecar_vault_request_duration_seconds_count\{[^}]*status="timeout"[^}]*\} [1-9]/);
  // Not stuck in flight: the attempts keep coming (three or more answered requests above, each cut at 1 s).
  expect(timeouts.length).toBeGreaterThanOrEqual(2);
});
