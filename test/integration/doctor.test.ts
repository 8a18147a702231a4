/**
 * `doctor` against a real Vault, real files and real sockets: a good setup passes every check, and
 * each ✗ is provoked once the way an operator would get it wrong — with the fix it prints.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { runDoctor } from '../../src/doctor/doctor.js';
import type { CheckResult, DoctorReport } from '../../src/doctor/report.js';
import { MAIN, NODE_FLAGS, spawnCli } from '../support/cli.js';
import { startDevServer } from '../support/dev-server.js';
import { approleAuth } from '../support/fixtures.js';
import { TestPki } from '../support/pki.js';
import { freePort } from '../support/ports.js';
import { type IssuedCertificate, issueFromVault, startSidecar, stopAllSidecars, vaultSection } from '../support/sidecars.js';
import { vaultApi } from '../support/vault-api.js';

const vault = inject('vault');
const env = { VAULT_TOKEN: vault.rootToken };
const dir = mkdtempSync(path.join(tmpdir(), 'sidecar-doctor-'));
let upstreamPort: number;
let configs = 0;

/** A config file as an operator writes one. */
function configFile(raw: Record<string, unknown>): string {
  const file = path.join(dir, `config-${++configs}.yaml`);
  writeFileSync(file, stringify(raw));
  return file;
}

const check = (found: DoctorReport, id: string): CheckResult | undefined => found.checks.find((c) => c.id === id);
const statuses = (found: DoctorReport) => Object.fromEntries(found.checks.map((c) => [c.id, c.status]));

/** A sidecar-shaped setup on Vault that should pass: its own names, an upstream sidecar to dial. */
async function goodVaultConfig(overrides: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
  return {
    vault: { ...vaultSection(vault), auth: await approleAuth(vault) },
    identity: { commonName: 'doctor.test', dnsNames: ['doctor.test'], uriSans: ['spiffe://test/ns/default/sa/doctor'], ttl: '10m' },
    inbound: [{ name: 'web', listen: `127.0.0.1:${await freePort()}`, target: '127.0.0.1:8080' }],
    outbound: [
      { name: 'upstream', listen: `127.0.0.1:${await freePort()}`, target: `127.0.0.1:${upstreamPort}`, serverName: 'upstream.test' },
    ],
    admin: { listen: `127.0.0.1:${await freePort()}` },
    ...overrides,
  };
}

beforeAll(async () => {
  const upstream = await startSidecar(
    {
      vault: vaultSection(vault),
      identity: { commonName: 'upstream.test', dnsNames: ['upstream.test'], ttl: '10m' },
      inbound: [{ name: 'api', listen: '127.0.0.1:0', target: '127.0.0.1:9' }],
    },
    env,
  );
  upstreamPort = upstream.listenerAddress('api').port;
});

afterAll(() => stopAllSidecars());

describe('with Vault', () => {
  it('passes every check on a good setup, the upstream named as it presented itself', async () => {
    const found = await runDoctor(configFile(await goodVaultConfig()), {});
    expect(found.checks.filter((c) => c.status !== 'pass')).toEqual([]);
    expect(found.ok).toBe(true);
    expect(found.checks.map((c) => c.id)).toEqual([
      'config',
      'vault.reachable',
      'vault.clock',
      'vault.auth',
      'vault.policy',
      'pki.role',
      'trust.bundle',
      'trust.crl',
      'trust.conditional',
      'tls.mutual',
      'listen.web',
      'listen.upstream',
      'listen.admin',
      'outbound.upstream',
    ]);
    expect(check(found, 'vault.auth')?.detail).toMatch(
      /^approle login as approle-[\w-]+; policies default, sidecar; token TTL 1h, renewable$/,
    );
    expect(check(found, 'pki.role')?.detail).toContain('spiffe://test/ns/default/sa/doctor, doctor.test');
    expect(check(found, 'outbound.upstream')?.detail).toContain('the server is upstream.test');
  });

  it('✗ config: an invalid file stops there', async () => {
    const found = await runDoctor(configFile({ identity: { sourse: 'files' } }), {});
    expect(found.ok).toBe(false);
    expect(found.checks).toHaveLength(1);
    expect(found.checks[0]).toMatchObject({ id: 'config', status: 'fail', fix: expect.stringContaining('config check') });
    expect(found.checks[0]?.detail).toContain('did you mean "source"');
  });

  it('✗ vault.reachable: nothing at the address; everything that needs Vault is skipped', async () => {
    const raw = await goodVaultConfig();
    const found = await runDoctor(
      configFile({ ...raw, vault: { ...(raw.vault as object), address: `http://127.0.0.1:${await freePort()}` } }),
      {},
    );
    expect(check(found, 'vault.reachable')).toMatchObject({ status: 'fail', detail: expect.stringContaining('ECONNREFUSED') });
    expect(check(found, 'vault.reachable')?.fix).toMatch(/vault\.address/);
    for (const id of ['vault.clock', 'vault.auth', 'pki.role', 'trust.bundle', 'tls.mutual', 'outbound.upstream']) {
      expect(check(found, id)?.status, id).toBe('skip');
    }
    // The local checks still run.
    expect(check(found, 'listen.web')?.status).toBe('pass');
  });

  it("✗ vault.reachable: Vault's TLS certificate from a CA the sidecar was not given", async () => {
    const server = await startDevServer(vault.bin, undefined, { tls: true });
    try {
      const raw = {
        vault: { address: server.address, pki: { mount: 'pki', role: 'none' } },
        identity: { commonName: 'x.test', ttl: '10m' },
      };
      const untrusted = await runDoctor(configFile(raw), { VAULT_TOKEN: 'root' });
      expect(check(untrusted, 'vault.reachable')).toMatchObject({
        status: 'fail',
        detail: expect.stringMatching(/Vault's TLS certificate is not trusted \(\w+\)/),
        fix: expect.stringContaining('set vault.caCert (or VAULT_CACERT)'),
      });
      const trusted = await runDoctor(configFile({ ...raw, vault: { ...raw.vault, caCert: server.caFile } }), { VAULT_TOKEN: 'root' });
      expect(check(trusted, 'vault.reachable')).toMatchObject({ status: 'pass', detail: expect.stringContaining('TLS verified') });
    } finally {
      await server.stop();
    }
  });

  it('✗ vault.reachable: a vault.caCert that cannot be read is a finding, not a crash', async () => {
    const raw = await goodVaultConfig();
    const caCert = path.join(dir, 'no-such-ca.pem');
    const found = await runDoctor(configFile({ ...raw, vault: { ...(raw.vault as object), caCert } }), {});
    expect(check(found, 'vault.reachable')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining(`cannot read ${caCert} (ENOENT)`),
    });
    expect(check(found, 'pki.role')?.status).toBe('skip');
  });

  it('✗ vault.clock: this host 90 s ahead of Vault (faketime), from the command line', async () => {
    const file = configFile(await goodVaultConfig());
    const { stdout, code } = await new Promise<{ stdout: string; code: number }>((resolve) =>
      execFile(
        'faketime',
        ['-f', '+90s', process.execPath, ...NODE_FLAGS, MAIN, 'doctor', '-c', file, '-o', 'json'],
        { env: { PATH: process.env.PATH } },
        (err, out) => resolve({ stdout: out, code: err ? Number(err.code) : 0 }),
      ),
    );
    expect(code).toBe(1);
    const found = JSON.parse(stdout) as DoctorReport;
    expect(check(found, 'vault.clock')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/clock is (89|9\d)\.\d s ahead of Vault's/),
    });
    expect(check(found, 'vault.clock')?.fix).toContain('NTP');
  });

  it('✗ vault.auth: an AppRole secret id that Vault does not know', async () => {
    const raw = await goodVaultConfig();
    const secretIdFile = path.join(dir, 'wrong-secret-id');
    writeFileSync(secretIdFile, '00000000-0000-0000-0000-000000000000');
    const vaultRaw = raw.vault as { auth: Record<string, string> };
    const found = await runDoctor(configFile({ ...raw, vault: { ...vaultRaw, auth: { ...vaultRaw.auth, secretIdFile } } }), {});
    expect(check(found, 'vault.auth')).toMatchObject({ status: 'fail', detail: expect.stringContaining('approle login') });
    expect(check(found, 'vault.auth')?.fix).toContain('secret id');
    expect(check(found, 'pki.role')?.status).toBe('skip');
  });

  describe('a token whose policy lacks the sign grant', () => {
    async function tokenWith(policy: string): Promise<string> {
      const name = `doctor-${Math.random().toString(36).slice(2)}`;
      await vaultApi(vault, 'PUT', `sys/policies/acl/${name}`, { policy });
      const created = await vaultApi<{ auth: { client_token: string } }>(vault, 'POST', 'auth/token/create', {
        policies: [name],
        ttl: '10m',
      });
      return created.auth.client_token;
    }

    it('✗ vault.policy and ✗ pki.role: no sign on the role', async () => {
      const token = await tokenWith(
        `path "${vault.pkiMount}/issuers" { capabilities = ["list"] }\npath "${vault.pkiMount}/issuer/*" { capabilities = ["read"] }`,
      );
      const found = await runDoctor(configFile({ ...(await goodVaultConfig()), vault: vaultSection(vault) }), { VAULT_TOKEN: token });
      expect(check(found, 'vault.policy')).toMatchObject({
        status: 'fail',
        detail: expect.stringContaining(`update on ${vault.pkiMount}/sign/${vault.role}`),
      });
      expect(check(found, 'pki.role')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/denied|403|permission/i) });
      expect(check(found, 'trust.bundle')?.status).toBe('pass');
      expect(check(found, 'tls.mutual')?.status).toBe('skip');
    });

    it('✗ vault.policy: revokeOnShutdown.certificate without update on revoke-with-key', async () => {
      const sign = `path "${vault.pkiMount}/sign/${vault.role}" { capabilities = ["update"] }`;
      const raw = { ...(await goodVaultConfig()), vault: { ...vaultSection(vault), revokeOnShutdown: { certificate: true } } };
      const without = await runDoctor(configFile(raw), { VAULT_TOKEN: await tokenWith(sign) });
      expect(check(without, 'vault.policy')).toMatchObject({
        status: 'fail',
        detail: expect.stringContaining(`update on ${vault.pkiMount}/revoke-with-key`),
        fix: expect.stringContaining(`path "${vault.pkiMount}/revoke-with-key" { capabilities = ["update"] }`),
      });
      const revoke = `path "${vault.pkiMount}/revoke-with-key" { capabilities = ["update"] }`;
      const granted = await runDoctor(configFile(raw), { VAULT_TOKEN: await tokenWith(`${sign}\n${revoke}`) });
      expect(check(granted, 'vault.policy')).toMatchObject({
        status: 'pass',
        detail: expect.stringContaining('revoke its own certificate'),
      });
    });
  });

  it('✗ trust.bundle: a PKI mount without a CA (the wrong mount named)', async () => {
    const mount = `pki-empty-${Math.random().toString(36).slice(2, 8)}`;
    await vaultApi(vault, 'POST', `sys/mounts/${mount}`, { type: 'pki' });
    const raw = { vault: { address: vault.address, pki: { mount, role: 'svc' } }, identity: { commonName: 'x.test', ttl: '10m' } };
    const found = await runDoctor(configFile(raw), env);
    expect(check(found, 'pki.role')?.status).toBe('fail');
    expect(check(found, 'trust.bundle')).toMatchObject({ status: 'fail', fix: expect.stringContaining(`vault list ${mount}/issuers`) });
  });

  it('✗ pki.role: a name the role does not allow, in Vault words; ! when Vault caps the TTL', async () => {
    const refused = await runDoctor(
      configFile(await goodVaultConfig({ identity: { commonName: 'doctor.test', dnsNames: ['evil.example'], ttl: '10m' } })),
      {},
    );
    expect(check(refused, 'pki.role')).toMatchObject({ status: 'fail', detail: expect.stringContaining('evil.example') });
    expect(check(refused, 'pki.role')?.fix).toContain(`vault read ${vault.pkiMount}/roles/${vault.role}`);
    // The test role's max_ttl is 24h.
    const capped = await runDoctor(configFile(await goodVaultConfig({ identity: { commonName: 'doctor.test', ttl: '48h' } })), {});
    expect(check(capped, 'pki.role')).toMatchObject({ status: 'warn', detail: expect.stringContaining('identity.ttl asks for 2d') });
    expect(capped.ok).toBe(true);
  });

  it('✗ trust.crl: crl closed with an issuer Vault has no CRL for (a key-less imported CA); ! with soft', async () => {
    const mount = `pki-doctor-${Math.random().toString(36).slice(2, 8)}`;
    await vaultApi(vault, 'POST', `sys/mounts/${mount}`, { type: 'pki', config: { max_lease_ttl: '48h' } });
    await vaultApi(vault, 'POST', `${mount}/root/generate/internal`, { common_name: 'doctor root', ttl: '48h', key_type: 'ec' });
    await vaultApi(vault, 'POST', `${mount}/roles/svc`, {
      allowed_domains: ['test'],
      allow_subdomains: true,
      key_type: 'ec',
      max_ttl: '1h',
    });
    await vaultApi(vault, 'POST', `${mount}/issuers/import/cert`, { pem_bundle: TestPki.create('imported').ca.cert });
    const raw = (crl: string) => ({
      vault: { address: vault.address, pki: { mount, role: 'svc', crl } },
      identity: { commonName: 'crl.test', ttl: '10m' },
    });
    const closed = await runDoctor(configFile(raw('closed')), env);
    expect(check(closed, 'trust.crl')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('crl closed refuses its certificates'),
    });
    const soft = await runDoctor(configFile(raw('soft')), env);
    expect(check(soft, 'trust.crl')).toMatchObject({ status: 'warn', detail: expect.stringContaining('soft enforces no CRL') });
    // Soft drops the CRLs, as the sidecar does, so its own certificate still passes a handshake.
    expect(check(soft, 'tls.mutual')?.status).toBe('pass');
  });

  describe('listeners and upstreams', () => {
    it('✗ listen: a port another process holds', async () => {
      const holder = net.createServer();
      await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
      const port = (holder.address() as net.AddressInfo).port;
      try {
        const found = await runDoctor(
          configFile(await goodVaultConfig({ inbound: [{ name: 'web', listen: `127.0.0.1:${port}`, target: '127.0.0.1:8080' }] })),
          {},
        );
        expect(check(found, 'listen.web')).toMatchObject({ status: 'fail', detail: `127.0.0.1:${port}: EADDRINUSE` });
        expect(check(found, 'listen.web')?.fix).toContain(`ss -ltnp | grep :${port}`);
      } finally {
        holder.close();
      }
    });

    it('✗ outbound: nothing listening, the wrong name, and an upstream that refuses our certificate', async () => {
      // Trusted by us (a Vault certificate), but it only accepts clients from another CA.
      const served: IssuedCertificate = await issueFromVault(vault, 'picky.test');
      const picky = tls.createServer({
        cert: served.cert,
        key: served.key,
        ca: TestPki.create('other').ca.cert,
        requestCert: true,
        rejectUnauthorized: true,
      });
      picky.on('tlsClientError', () => undefined);
      await new Promise<void>((resolve) => picky.listen(0, '127.0.0.1', resolve));
      const closedPort = await freePort();
      try {
        const outbound = [
          { name: 'down', listen: '127.0.0.1:0', target: `127.0.0.1:${closedPort}`, serverName: 'upstream.test' },
          { name: 'misnamed', listen: '127.0.0.1:0', target: `127.0.0.1:${upstreamPort}`, serverName: 'payments.test' },
          {
            name: 'picky',
            listen: '127.0.0.1:0',
            target: `127.0.0.1:${(picky.address() as net.AddressInfo).port}`,
            serverName: 'picky.test',
          },
        ];
        const found = await runDoctor(configFile(await goodVaultConfig({ outbound })), {});
        expect(check(found, 'outbound.down')).toMatchObject({ status: 'fail', detail: `127.0.0.1:${closedPort}: ECONNREFUSED` });
        expect(check(found, 'outbound.misnamed')).toMatchObject({ status: 'fail', detail: expect.stringContaining('identity_denied') });
        expect(check(found, 'outbound.misnamed')?.fix).toContain('set serverName on outbound misnamed');
        expect(check(found, 'outbound.picky')).toMatchObject({
          status: 'fail',
          detail: expect.stringContaining('peer_refused_certificate'),
        });
        expect(check(found, 'outbound.picky')?.fix).toContain("must trust this sidecar's CA");
      } finally {
        picky.close();
      }
    });
  });
});

describe('with files', () => {
  const pki = TestPki.create('doctor');
  const good = pki.leaf('good', { cn: 'files.test', dns: ['files.test'] });

  const filesConfig = (files: Record<string, unknown>) =>
    configFile({
      identity: { source: 'files', files },
      inbound: [{ name: 'web', listen: '127.0.0.1:0', target: '127.0.0.1:8080' }],
      admin: { listen: '127.0.0.1:0' },
    });
  const run = (files: Record<string, unknown>) => runDoctor(filesConfig(files), {});

  it('passes with a matching pair from the CA', async () => {
    const found = await run({ cert: good.certFile, key: good.keyFile, ca: pki.ca.certFile });
    expect(statuses(found)).toEqual({
      config: 'pass',
      'files.read': 'pass',
      'cert.key': 'pass',
      'cert.validity': 'pass',
      'cert.chain': 'pass',
      'cert.names': 'pass',
      'tls.mutual': 'pass',
      'listen.web': 'pass',
      'listen.admin': 'pass',
    });
  });

  it('✗ files.read: a path with nothing there', async () => {
    const found = await run({ cert: path.join(dir, 'missing.crt'), key: good.keyFile, ca: pki.ca.certFile });
    expect(check(found, 'files.read')).toMatchObject({ status: 'fail', detail: expect.stringContaining('ENOENT') });
    expect(check(found, 'tls.mutual')?.status).toBe('skip');
  });

  it('✗ cert.key: the key of another certificate', async () => {
    const other = pki.leaf('other', { cn: 'other.test', dns: ['other.test'] });
    const found = await run({ cert: good.certFile, key: other.keyFile, ca: pki.ca.certFile });
    expect(check(found, 'cert.key')).toMatchObject({ status: 'fail', detail: 'the private key does not belong to the certificate' });
  });

  it('✗ cert.validity: an expired certificate', async () => {
    const expiring = await pki.shortLived('expiring', 'expiring.test', ['expiring.test'], 1);
    await new Promise((r) => setTimeout(r, 1500));
    const found = await run({ cert: expiring.certFile, key: expiring.keyFile, ca: pki.ca.certFile });
    expect(check(found, 'cert.validity')).toMatchObject({ status: 'fail', detail: expect.stringContaining('expired at') });
    // The sidecar would refuse it (verify-before-publish): nothing to shake hands with.
    expect(check(found, 'tls.mutual')?.status).toBe('skip');
  });

  it('✗ cert.chain: a CA file that did not issue the certificate', async () => {
    const found = await run({ cert: good.certFile, key: good.keyFile, ca: TestPki.create('stranger').ca.certFile });
    expect(check(found, 'cert.chain')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('does not chain to the trust bundle'),
    });
    expect(check(found, 'tls.mutual')?.status).toBe('skip');
  });

  it('! cert.names without a SAN; ✗ tls.mutual for a certificate without clientAuth', async () => {
    const bare = pki.leaf('bare', { cn: 'bare.test' });
    const noSan = await run({ cert: bare.certFile, key: bare.keyFile, ca: pki.ca.certFile });
    expect(check(noSan, 'cert.names')).toMatchObject({ status: 'warn', fix: expect.stringContaining('ignore the CN') });
    const serverOnly = pki.leaf('server-only', { cn: 'server.test', dns: ['server.test'], eku: 'serverAuth' });
    const found = await run({ cert: serverOnly.certFile, key: serverOnly.keyFile, ca: pki.ca.certFile });
    expect(check(found, 'tls.mutual')).toMatchObject({ status: 'fail', detail: expect.stringContaining('wrong_purpose') });
    expect(check(found, 'tls.mutual')?.fix).toContain('clientAuth');
  });
});

describe('the command', () => {
  it('prints a table with the fix under each ✗ and exits 1; exits 0 when all pass', async () => {
    const pki = TestPki.create('doctor-cli');
    const leaf = pki.leaf('cli', { cn: 'cli.test', dns: ['cli.test'] });
    const other = pki.leaf('cli-other', { cn: 'cli2.test', dns: ['cli2.test'] });
    const identity = (key: string) => ({ source: 'files', files: { cert: leaf.certFile, key, ca: pki.ca.certFile } });
    const bad = spawnCli(['doctor', '-c', configFile({ identity: identity(other.keyFile), admin: { listen: '127.0.0.1:0' } })]);
    expect(await bad.exited).toBe(1);
    expect(bad.stdout()).toMatch(/^✗ cert\.key +the private key does not belong to the certificate$/m);
    expect(bad.stdout()).toMatch(/^ +→ the cert and key files come from different issues/m);
    expect(bad.stdout()).toMatch(/failed, .* — fix the ✗ lines first, from the top$/m);
    const good = spawnCli([
      'doctor',
      '-c',
      configFile({ identity: identity(leaf.keyFile), admin: { listen: '127.0.0.1:0' } }),
      '--output',
      'json',
    ]);
    expect(await good.exited).toBe(0);
    expect(JSON.parse(good.stdout())).toMatchObject({ ok: true });
    expect(good.stdout()).not.toContain(readFileSync(leaf.keyFile, 'utf8').split('\n')[1]);
  });

  it('checks the configuration an injected sidecar carries in its environment when no --config is given', async () => {
    const pki = TestPki.create('doctor-env');
    const leaf = pki.leaf('env', { cn: 'env.test', dns: ['env.test'] });
    const inline = JSON.stringify({
      identity: { source: 'files', files: { cert: leaf.certFile, key: leaf.keyFile, ca: pki.ca.certFile } },
      admin: { listen: '127.0.0.1:0' },
    });
    const injected = spawnCli(['doctor', '--output', 'json'], { VAULT_MTLS_SIDECAR_CONFIG: inline });
    expect(await injected.exited).toBe(0);
    expect(JSON.parse(injected.stdout()).checks[0]).toMatchObject({
      id: 'config',
      status: 'pass',
      detail: expect.stringMatching(/^VAULT_MTLS_SIDECAR_CONFIG: valid/),
    });
    const none = spawnCli(['doctor']);
    expect(await none.exited).toBe(1);
    expect(none.stdout()).toMatch(/^✗ config +config: no configuration; pass --config <file\.yaml> or set VAULT_MTLS_SIDECAR_CONFIG$/m);
  });
});
