/**
 * Certificates from files as Kubernetes and everyday guides deliver them: a 365-day openssl
 * certificate (a renewal point past setTimeout's 24.8-day limit) is published exactly once, a log
 * file written next to the certificates causes no reload, and a Secret update — the kubelet's
 * `..data` symlink swap — causes exactly one.
 */
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { type SidecarUnderAttack, startSidecarUnderAttack } from '../adversarial/harness.js';
import { waitFor } from '../support/cli.js';
import { type Pem, TestPki } from '../support/pki.js';

const pki = TestPki.create('k8s');
const dir = path.join(pki.dir, 'secret');
let first: Pem;
let second: Pem;
let sidecar: SidecarUnderAttack;

/** Writes a Secret version the way the kubelet does: a timestamped folder, then ..data swapped to it atomically. */
function writeVersion(version: string, pem: Pem): void {
  const folder = path.join(dir, `..${version}`);
  mkdirSync(folder);
  writeFileSync(path.join(folder, 'tls.crt'), pem.cert);
  writeFileSync(path.join(folder, 'tls.key'), pem.key);
  writeFileSync(path.join(folder, 'ca.crt'), pki.ca.cert);
  symlinkSync(`..${version}`, path.join(dir, '..data_tmp'));
  renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
}

const published = () => sidecar.logs().filter((l) => l.msg === 'certificate published');
const reloads = () => sidecar.logs().filter((l) => l.msg === 'identity files changed; reloading');

beforeAll(async () => {
  first = pki.leaf('first', { cn: 'app.test', dns: ['localhost'], days: 365 });
  second = pki.leaf('second', { cn: 'app.test', dns: ['localhost'], days: 365 });
  mkdirSync(dir);
  writeVersion('2026_11_25_v1', first);
  for (const name of ['tls.crt', 'tls.key', 'ca.crt']) symlinkSync(path.join('..data', name), path.join(dir, name));
  sidecar = await startSidecarUnderAttack({
    pki,
    inbound: [{ name: 'web', target: '127.0.0.1:1' }],
    extra: {
      identity: {
        source: 'files',
        files: { cert: path.join(dir, 'tls.crt'), key: path.join(dir, 'tls.key'), ca: path.join(dir, 'ca.crt'), pollInterval: '1s' },
      },
    },
  });
});

it('publishes a 365-day certificate exactly once, with no timer overflow', async () => {
  await new Promise((r) => setTimeout(r, 3000));
  expect(published()).toHaveLength(1);
  expect(sidecar.run.stderr()).not.toContain('TimeoutOverflowWarning');
  const next = new Date(String(published()[0]?.nextRenewal));
  expect(next.getTime() - Date.now()).toBeGreaterThan(100 * 86_400_000);
});

it('does not reload for a log file written next to the certificates', async () => {
  for (let i = 0; i < 100; i++) {
    writeFileSync(path.join(dir, 'app.log'), `line ${i}\n`, { flag: 'a' });
    await new Promise((r) => setTimeout(r, 20));
  }
  await new Promise((r) => setTimeout(r, 1500));
  expect(reloads()).toHaveLength(0);
  expect(published()).toHaveLength(1);
});

it('reloads exactly once for a Secret update (..data symlink swap)', async () => {
  writeVersion('2026_11_25_v2', second);
  rmSync(path.join(dir, '..2026_11_25_v1'), { recursive: true });
  await waitFor(() => published().length === 2, 5000, 'the second certificate to be published');
  await new Promise((r) => setTimeout(r, 2000));
  expect(reloads()).toHaveLength(1);
  expect(published()).toHaveLength(2);
  const serial = (await (await fetch(`http://127.0.0.1:${sidecar.adminPort}/certs`)).json()) as { serial: string };
  expect(second.cert).toBeTruthy();
  expect(serial.serial).toBe(String(published()[1]?.serial));
  await sidecar.assertAlive();
});
