/**
 * `vault-mtls-sidecar run` as a user runs it: the built CLI, a YAML file, VAULT_TOKEN in the
 * environment, a real Vault; and the one-line failures for bad configuration.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { loggedPort, type Spawned, spawnCli, waitFor } from '../support/cli.js';
import { freePort } from '../support/ports.js';

const vault = inject('vault');
const dir = mkdtempSync(path.join(tmpdir(), 'sidecar-run-'));
const started: Spawned[] = [];

afterEach(() => {
  for (const s of started.splice(0)) s.child.kill('SIGKILL');
});

function writeConfig(name: string, yaml: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, yaml);
  return file;
}

async function readyz(port: number): Promise<number> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/readyz`)).status;
  } catch {
    return 0;
  }
}

describe('run with a config file', () => {
  it('gets a certificate from Vault, turns ready, and exits 0 on SIGTERM', async () => {
    const file = writeConfig(
      'service.yaml',
      `
vault:
  pki: { mount: ${vault.pkiMount}, role: ${vault.role} }
identity:
  commonName: cli.test
  dnsNames: [localhost]
  uriSans: ["spiffe://test/ns/default/sa/cli"]
  ttl: 10m
inbound:
  - name: app
    listen: 127.0.0.1:0
    target: 127.0.0.1:1
admin:
  listen: 127.0.0.1:0
`,
    );
    const run = spawnCli(['run', '--config', file], { VAULT_ADDR: vault.address, VAULT_TOKEN: vault.rootToken });
    started.push(run);
    const admin = await loggedPort(run, 'admin server ready');
    await waitFor(
      async () => (await readyz(admin)) === 200,
      15_000,
      () => `/readyz (stderr: ${run.stderr()})`,
    );
    const certs = (await (await fetch(`http://127.0.0.1:${admin}/certs`)).json()) as { subject: string };
    expect(certs.subject).toContain('CN=cli.test');
    // Logs are JSON lines and never carry the token or the key.
    const logs = run.stdout();
    expect(logs).toContain('"msg":"sidecar ready"');
    expect(logs).not.toContain(vault.rootToken === 'root' ? '"root"' : vault.rootToken);
    expect(logs).not.toContain('PRIVATE KEY');
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  });

  it('gives start-up memory back with one memory-reducing collection once ready', async () => {
    const file = writeConfig(
      'compact.yaml',
      `identity: { source: dev, commonName: compact.test }
inbound: [{ name: app, listen: "127.0.0.1:0", target: "127.0.0.1:1" }]
admin: { listen: "127.0.0.1:0" }
`,
    );
    const run = spawnCli(['run', '--config', file, '--log-level', 'debug']);
    started.push(run);
    await waitFor(
      () => run.stdout().includes('"msg":"heap compacted"'),
      15_000,
      () => `the compaction log line (stdout: ${run.stdout()})`,
    );
    const line = run
      .stdout()
      .split('\n')
      .find((l) => l.includes('"msg":"heap compacted"')) as string;
    const logged = JSON.parse(line) as { reason: string; beforeBytes: number; afterBytes: number };
    expect(logged.reason).toBe('start-up done');
    // Start-up leaves megabytes of garbage and a grown young generation; a real V8 collection returns them.
    expect(logged.afterBytes).toBeLessThan(logged.beforeBytes - 2 * 1024 * 1024);
    expect(run.stdout().indexOf('"msg":"sidecar ready"')).toBeLessThan(run.stdout().indexOf('"msg":"heap compacted"'));
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  });
});

describe('config check', () => {
  it('prints the effective configuration with defaults, addresses as written, and no secret', async () => {
    const file = writeConfig(
      'check.yaml',
      'vault:\n  pki: { role: web }\nidentity: { commonName: web.test }\ninbound:\n  - { name: app, listen: "0.0.0.0:8443", target: "127.0.0.1:8080" }\n',
    );
    const run = spawnCli(['config', 'check', '-c', file], { VAULT_TOKEN: 's.very-secret', VAULT_ADDR: 'https://vault.svc:8200' });
    expect(await run.exited).toBe(0);
    const out = run.stdout();
    expect(out).toContain(`# ${file}: valid.`);
    expect(out).toContain('address: https://vault.svc:8200');
    expect(out).toContain('listen: 0.0.0.0:8443');
    expect(out).toContain('issuerCheckInterval: 300');
    expect(out).toContain('token: <redacted>');
    expect(out).not.toContain('very-secret');
  });

  it.each([
    ['-h', /Commands:/],
    ['--help', /Commands:/],
    ['-v', /^\d+\.\d+\.\d+\s*$/],
    ['--version', /^\d+\.\d+\.\d+\s*$/],
  ])('answers %s and exits 0', async (flag, output) => {
    const run = spawnCli([flag]);
    expect(await run.exited).toBe(0);
    expect(run.stdout()).toMatch(output);
  });
});

describe('bad configuration', () => {
  const cases = [
    {
      what: 'no Vault address',
      yaml: 'vault:\n  pki: { role: web }\nidentity: { commonName: web.test }\n',
      env: { VAULT_TOKEN: 't' },
      field: 'vault.address',
    },
    {
      what: 'an unknown field',
      yaml: 'vault:\n  address: http://127.0.0.1:8200\n  pki: { role: web }\nidentity: { commonName: web.test, ttll: 1h }\n',
      env: { VAULT_TOKEN: 't' },
      field: 'identity: unknown field "ttll"',
    },
    {
      what: 'a malformed listener address',
      yaml: 'vault:\n  address: http://127.0.0.1:8200\n  pki: { role: web }\nidentity: { commonName: web.test }\ninbound:\n  - { name: app, listen: "8443", target: "127.0.0.1:8080" }\n',
      env: { VAULT_TOKEN: 't' },
      field: 'inbound[0].listen',
    },
  ];
  for (const c of cases) {
    it(`exits non-zero with one line naming the field: ${c.what}`, async () => {
      const run = spawnCli(['run', '--config', writeConfig(`${c.what}.yaml`, c.yaml)], c.env);
      expect(await run.exited).toBe(1);
      const lines = run.stderr().trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(c.field);
      expect(lines[0]).toMatch(/\[SIDECAR_CONFIG_INVALID\]$/);
      expect(run.stdout()).toBe('');
    });
  }

  it('reports every problem of a file at once, one line each, a misspelt field with the nearest name', async () => {
    const yaml = [
      'vault:',
      '  address: vault.svc:8200',
      '  pki: { role: web }',
      'identity:',
      '  sourse: files',
      '  commonName: web.test',
      '  dnsNames: web.svc',
      'inbound:',
      '  - { name: app, lisen: "127.0.0.1:8443", target: "127.0.0.1:8080", limits: { maxConnections: "1024" } }',
      'tls: { profile: strict }',
    ].join('\n');
    const run = spawnCli(['config', 'check', '--config', writeConfig('many.yaml', yaml)], { VAULT_TOKEN: 't' });
    expect(await run.exited).toBe(1);
    const lines = run.stderr().trim().split('\n');
    expect(lines).toEqual([
      '✖ config: identity: unknown field "sourse"; did you mean "source"? [SIDECAR_CONFIG_INVALID]',
      '✖ config: inbound[0]: unknown field "lisen"; did you mean "listen"? [SIDECAR_CONFIG_INVALID]',
      '✖ config: vault.address: expected an http:// or https:// URL such as https://vault.svc:8200, found "vault.svc:8200" (from vault.address, VAULT_ADDR or --vault-addr) [SIDECAR_CONFIG_INVALID]',
      '✖ config: identity.dnsNames: expected a list, found the string "web.svc" [SIDECAR_CONFIG_INVALID]',
      '✖ config: inbound[0].listen: is required [SIDECAR_CONFIG_INVALID]',
      '✖ config: inbound[0].limits.maxConnections: expected a number, found the string "1024" [SIDECAR_CONFIG_INVALID]',
      '✖ config: tls.profile: expected one of "intermediate", "modern", found the string "strict" [SIDECAR_CONFIG_INVALID]',
    ]);
  });

  it('names a missing config file', async () => {
    const run = spawnCli(['run', '--config', path.join(dir, 'nope.yaml')]);
    expect(await run.exited).toBe(1);
    expect(run.stderr()).toMatch(/cannot read .*nope\.yaml \(ENOENT\).*\[SIDECAR_CONFIG_FILE_UNREADABLE\]/);
  });

  it('says what to check when Vault is unreachable at start-up, and keeps trying, not ready', async () => {
    const dead = await freePort();
    const file = writeConfig(
      'unreachable.yaml',
      `vault:\n  address: http://127.0.0.1:${dead}\n  pki: { role: web }\nidentity: { commonName: web.test }\nadmin: { listen: "127.0.0.1:0" }\nstartupTimeout: 2s\n`,
    );
    const run = spawnCli(['run', '--config', file], { VAULT_TOKEN: 't' });
    started.push(run);
    const admin = await loggedPort(run, 'admin server ready');
    await waitFor(() => run.stdout().includes('SIDECAR_STARTUP_TIMEOUT'), 10_000, 'the start-up timeout line');
    const line = JSON.parse(
      run
        .stdout()
        .split('\n')
        .find((l) => l.includes('SIDECAR_STARTUP_TIMEOUT')) ?? '{}',
    ) as { msg: string };
    expect(line.msg).toMatch(
      /^no certificate after 2s; last error: vault: token lookup-self: cannot reach .* \[SIDECAR_VAULT_UNREACHABLE\]/,
    );
    expect(line.msg).toContain(
      `check the Vault address (http://127.0.0.1:${dead}), the token auth role and its policy, and the PKI role pki/roles/web`,
    );
    expect(await readyz(admin)).toBe(503);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  });
});
