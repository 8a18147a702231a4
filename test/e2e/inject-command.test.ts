/**
 * `vault-mtls-sidecar inject` as a user runs it: files in, YAML on stdout, one line per object on
 * stderr, exit 1 with every annotation problem named.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { spawnCli } from '../support/cli.js';
import { deploymentWith, WORKLOADS } from '../support/workloads.js';

const dir = mkdtempSync(path.join(tmpdir(), 'sidecar-inject-'));

async function cli(args: string[]) {
  const run = spawnCli(args);
  const code = await run.exited;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

it('injects every object of several files, and --uninject gives them back', async () => {
  const files = ['Deployment', 'CronJob'].map((kind) => {
    const file = path.join(dir, `${kind}.yaml`);
    writeFileSync(file, WORKLOADS[kind] as string);
    return file;
  });
  const injected = await cli(['inject', ...files, '--vault-addr', 'https://vault.vault.svc:8200']);
  expect(injected.code).toBe(0);
  expect(injected.stderr).toBe('Deployment shop/orders: injected (role orders)\nCronJob shop/orders-report: injected (role orders)\n');
  const docs = parseAllDocuments(injected.stdout).map((d) => d.toJS());
  expect(docs).toHaveLength(2);
  expect(JSON.stringify(docs)).toContain('"restartPolicy":"Always"');

  const out = path.join(dir, 'injected.yaml');
  writeFileSync(out, injected.stdout);
  const back = await cli(['inject', '--uninject', out]);
  expect(back.code).toBe(0);
  expect(parseAllDocuments(back.stdout).map((d) => d.toJS())).toEqual([
    parse(WORKLOADS.Deployment as string),
    parse(WORKLOADS.CronJob as string),
  ]);
});

it('exits 1 naming each bad annotation and its object, and writes nothing', async () => {
  const file = path.join(dir, 'bad.yaml');
  writeFileSync(
    file,
    deploymentWith(['vault-mtls-sidecar/inject: "true"', 'vault-mtls-sidecar/role: orders', 'vault-mtls-sidecar/inbund: "8443:8080"']),
  );
  const { code, stdout, stderr } = await cli(['inject', file, '--vault-addr', 'https://vault:8200']);
  expect(code).toBe(1);
  expect(stdout).toBe('');
  expect(stderr.trim().split('\n')).toEqual([
    '✖ Deployment shop/orders: unknown annotation vault-mtls-sidecar/inbund; known: inject, role, vault-addr, auth-mount, pki-mount, inbound, outbound, ttl, image, cpu-request, memory-request, memory-limit [SIDECAR_INJECT_INVALID]',
  ]);
});
