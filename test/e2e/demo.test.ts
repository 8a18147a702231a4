/** The demo, run as the README tells a user to, does what its printed curl commands promise. */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Spawned, spawnCli, waitFor } from '../support/cli.js';
import { freePort } from '../support/ports.js';

let demo: Spawned;
let commands: string[];
let dir: string;

function sh(command: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('sh', ['-c', command], { cwd: dir }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'sidecar-demo-'));
  const ports = [await freePort(), await freePort(), await freePort()];
  demo = spawnCli([
    'demo',
    '--dir',
    path.join(dir, 'certs'),
    '--inbound-port',
    String(ports[0]),
    '--outbound-port',
    String(ports[1]),
    '--admin-port',
    String(ports[2]),
  ]);
  await waitFor(
    () => demo.stdout().includes('Press Ctrl-C'),
    15_000,
    () => `the demo to start (stderr: ${demo.stderr()})`,
  );
  commands = demo
    .stdout()
    .split('\n')
    .filter((line) => line.startsWith('  curl '))
    .map((line) => line.trim());
});

afterAll(() => {
  demo.child.kill('SIGKILL');
});

it('prints three one-line curl commands', () => {
  expect(commands).toHaveLength(3);
});

it('refuses the command without a client certificate at the handshake', async () => {
  const res = await sh(commands[0] ?? 'false');
  expect(res.code).not.toBe(0);
  expect(res.stdout).toBe('');
  expect(res.stderr).toMatch(/certificate required|alert|handshake/i);
});

it('answers the command with the client certificate, naming the caller', async () => {
  const res = await sh(commands[1] ?? 'false');
  expect(res.code).toBe(0);
  const echo = JSON.parse(res.stdout);
  expect(echo).toMatchObject({ app: 'echo', method: 'GET', path: '/hello' });
  expect(echo.caller).toContain('URI=spiffe://demo.local/ns/default/sa/curl');
});

it('carries the plaintext command through the outbound listener with mTLS', async () => {
  const res = await sh(commands[2] ?? 'false');
  expect(res.code).toBe(0);
  const echo = JSON.parse(res.stdout);
  expect(echo.path).toBe('/via-outbound');
  expect(echo.caller).toContain('URI=spiffe://demo.local/ns/default/sa/echo');
});

it('stops cleanly on Ctrl-C', async () => {
  demo.child.kill('SIGINT');
  expect(await demo.exited).toBe(0);
});
