/**
 * Issue 24, defect 15: a client certificate that can sign mints any identity. A client holding a
 * CA:TRUE certificate under the trusted CA (refused as a leaf since round one) signs a new leaf
 * for spiffe://test/ns/admin/sa/admin and presents the pair; OpenSSL validates the chain through
 * it. A peer's leaf must be issued by a trusted CA itself: the pair is refused, the app receives
 * nothing. The files source has an option for CAs whose intermediates are not known in advance.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { waitFor } from '../support/cli.js';
import { type Pem, TestPki } from '../support/pki.js';
import { issueFromVault } from '../support/sidecars.js';
import { vaultApi } from '../support/vault-api.js';
import { type RecordingApp, type SidecarUnderAttack, startRecordingApp, startSidecarUnderAttack } from './harness.js';
import { startVaultSidecar } from './vault-sidecar.js';

const ADMIN = 'spiffe://test/ns/admin/sa/admin';

/** Presents `leaf` with `chain` after it and sends one request; resolves with whatever came back. */
function presentChain(sidecar: Pick<SidecarUnderAttack, 'port'>, leaf: Pem, chain: Pem[], ca: string): Promise<string> {
  return new Promise((resolve) => {
    let answer = '';
    const socket = tls.connect({
      host: '127.0.0.1',
      port: sidecar.port('web'),
      cert: [leaf.cert, ...chain.map((c) => c.cert)].join(''),
      key: leaf.key,
      ca,
      servername: 'localhost',
    });
    socket.on('error', () => undefined);
    socket.once('secureConnect', () => socket.write('GET /admin HTTP/1.1\r\nHost: svc.test\r\nConnection: close\r\n\r\n'));
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
    });
    socket.once('close', () => resolve(answer));
  });
}

describe('default: the leaf must be issued by a CA of identity.files.ca', () => {
  let app: RecordingApp;
  let sidecar: SidecarUnderAttack;

  beforeAll(async () => {
    app = await startRecordingApp();
    sidecar = await startSidecarUnderAttack({ inbound: [{ name: 'web', target: `127.0.0.1:${app.port}` }] });
  });
  afterAll(() => app.close());

  it('refuses a leaf for any identity minted by a CA:TRUE client certificate; the app receives nothing', async () => {
    const signer = sidecar.pki.leaf('client-that-can-sign', { cn: 'ordinary.test', caTrue: true });
    const minted = sidecar.pki.leaf('minted-admin', { cn: 'admin.test', uris: [ADMIN], signer });

    const answer = await presentChain(sidecar, minted, [signer], sidecar.pki.ca.cert);

    expect(answer).not.toMatch(/^HTTP\/1\.1 200/);
    expect(app.raw()).not.toContain('sa/admin');
    expect(app.requests.some((r) => r.url === '/admin')).toBe(false);
    await waitFor(() => sidecar.logs('tls_handshake_rejected').some((l) => l.reason === 'untrusted_issuer'), 5000, 'the audit line');
    const line = sidecar.logs('tls_handshake_rejected').find((l) => l.reason === 'untrusted_issuer');
    expect(String(line?.detail)).toContain('ordinary.test');
    expect(await sidecar.metric('sidecar_tls_handshake_failures_total', { listener: 'web', reason: 'untrusted_issuer' })).toBe(1);
    await sidecar.assertAlive('web');
  });

  it('refuses a leaf from an intermediate the client brings, even a real one with pathlen:0', async () => {
    const intermediate = sidecar.pki.intermediate('brought');
    const leaf = sidecar.pki.leaf('from-brought', { cn: 'deep.test', uris: [ADMIN], signer: intermediate });
    expect(await presentChain(sidecar, leaf, [intermediate], sidecar.pki.ca.cert)).not.toMatch(/^HTTP\/1\.1 200/);
    expect(app.raw()).not.toContain('sa/admin');
    await sidecar.assertAlive('web');
  });
});

describe('identity.files.peerIntermediates: true, for CAs with intermediates not known in advance', () => {
  let app: RecordingApp;
  let sidecar: SidecarUnderAttack;

  beforeAll(async () => {
    app = await startRecordingApp();
    const pki = TestPki.create();
    const server = pki.leaf('server-deep', { cn: 'app.test', dns: ['localhost'], uris: ['spiffe://test/ns/default/sa/app'] });
    const files = { cert: server.certFile, key: server.keyFile, ca: pki.ca.certFile, peerIntermediates: true };
    sidecar = await startSidecarUnderAttack({
      pki,
      inbound: [{ name: 'web', target: `127.0.0.1:${app.port}` }],
      extra: { identity: { source: 'files', files } },
    });
  });
  afterAll(() => app.close());

  it('lets a leaf from an intermediate the client brings in; a CA:TRUE leaf itself is still refused', async () => {
    const intermediate = sidecar.pki.intermediate('known-later');
    const leaf = sidecar.pki.leaf('from-known-later', {
      cn: 'deep.test',
      uris: ['spiffe://test/ns/default/sa/deep'],
      signer: intermediate,
    });
    expect(await presentChain(sidecar, leaf, [intermediate], sidecar.pki.ca.cert)).toMatch(/^HTTP\/1\.1 200/);
    expect(app.requests.at(-1)?.headers['x-forwarded-client-cert']).toContain('sa/deep');
    const signer = sidecar.pki.leaf('still-a-ca', { cn: 'still-a-ca.test', caTrue: true });
    expect(await presentChain(sidecar, signer, [], sidecar.pki.ca.cert)).not.toMatch(/^HTTP\/1\.1 200/);
    await sidecar.assertAlive('web');
  });
});

describe('the Vault source: only the mount’s listed issuers sign peers', () => {
  const vault = inject('vault');

  it('refuses a leaf minted by an intermediate the mount signed but does not list; the app receives nothing', async () => {
    const app = await startRecordingApp();
    try {
      const sidecar = await startVaultSidecar({
        // With CRLs loaded OpenSSL happens to refuse the pair (no CRL for the rogue issuer); with
        // crl: off — or soft while a CRL is missing — nothing but the issuer rule stops it.
        vault: { address: vault.address, pki: { mount: vault.pkiMount, role: vault.role, crl: 'off' } },
        env: { VAULT_TOKEN: vault.rootToken },
        inbound: [{ name: 'web', target: `127.0.0.1:${app.port}` }],
      });
      // One CA certificate under the mount's root, in the wrong hands (sign-intermediate lists no issuer).
      const pki = TestPki.create('holder');
      const keyFile = path.join(pki.dir, 'rogue-int.key');
      const csr = execFileSync('openssl', [
        ...['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
        ...['-keyout', keyFile, '-subj', '/CN=rogue intermediate'],
      ]).toString();
      const signed = await vaultApi<{ data: { certificate: string } }>(vault, 'POST', `${vault.pkiMount}/root/sign-intermediate`, {
        csr,
        common_name: 'rogue intermediate',
        ttl: '1h',
      });
      const certFile = path.join(pki.dir, 'rogue-int.crt');
      writeFileSync(certFile, signed.data.certificate);
      const rogue: Pem = { cert: signed.data.certificate, key: readFileSync(keyFile, 'utf8'), certFile, keyFile };
      const minted = pki.leaf('minted-admin', { cn: 'admin.test', uris: [ADMIN], signer: rogue });

      const answer = await presentChain(sidecar, minted, [rogue], vault.caPem);

      expect(answer).not.toMatch(/^HTTP\/1\.1 200/);
      expect(app.raw()).not.toContain('sa/admin');
      expect(await sidecar.metric('sidecar_tls_handshake_failures_total', { listener: 'web', reason: 'untrusted_issuer' })).toBe(1);
      const client = await issueFromVault(vault, 'client.test', ['spiffe://test/ns/default/sa/client']);
      expect((await sidecar.get('web', client, vault.caPem)).status).toBe(200);
      await sidecar.assertAlive();
    } finally {
      app.close();
    }
  });
});

/**
 * Issue 24, follow-up of defect 15: on an intermediate mount, Vault lists the root above the
 * intermediate as a second, keyless issuer. A leaf the root issued directly (from the root mount,
 * under its own roles) was accepted by a sidecar of the intermediate mount, because the root was
 * "one of the mount's issuers". Only an issuer whose key is on the mount signs its certificates.
 */
describe('the Vault source on an intermediate mount: the keyless root above it issues no peer', () => {
  const vault = inject('vault');
  const mount = `pki-int-keyless-${process.pid}`;
  const role = 'peers';

  beforeAll(async () => {
    await vaultApi(vault, 'POST', `sys/mounts/${mount}`, { type: 'pki', config: { max_lease_ttl: '24h' } });
    const csr = await vaultApi<{ data: { csr: string } }>(vault, 'POST', `${mount}/intermediate/generate/internal`, {
      common_name: 'keyless-test intermediate',
      key_type: 'ec',
      key_bits: 256,
    });
    const signed = await vaultApi<{ data: { certificate: string; issuing_ca: string } }>(
      vault,
      'POST',
      `${vault.pkiMount}/root/sign-intermediate`,
      { csr: csr.data.csr, common_name: 'keyless-test intermediate', ttl: '24h' },
    );
    // The chain with the root, as docs/vault-setup.md's intermediate setup imports it: the root becomes a keyless issuer.
    await vaultApi(vault, 'POST', `${mount}/intermediate/set-signed`, {
      certificate: `${signed.data.certificate}\n${signed.data.issuing_ca}`,
    });
    await vaultApi(vault, 'POST', `${mount}/roles/${role}`, {
      allowed_domains: ['test', 'localhost'],
      allow_subdomains: true,
      allow_localhost: true,
      allowed_uri_sans: ['spiffe://test/*'],
      key_type: 'ec',
      key_bits: 256,
      max_ttl: '1h',
    });
  });
  afterAll(async () => {
    await vaultApi(vault, 'DELETE', `sys/mounts/${mount}`).catch(() => undefined);
  });

  it('refuses a leaf the root issued directly, naming why; a leaf of the mount’s own issuer is served', async () => {
    const issuers = await vaultApi<{ data: { keys: string[] } }>(vault, 'GET', `${mount}/issuers?list=true`);
    expect(issuers.data.keys.length).toBe(2); // the intermediate, and the root it was imported with
    const app = await startRecordingApp();
    try {
      const sidecar = await startVaultSidecar({
        vault: { address: vault.address, pki: { mount, role, crl: 'off' } },
        env: { VAULT_TOKEN: vault.rootToken },
        inbound: [{ name: 'web', target: `127.0.0.1:${app.port}` }],
      });
      // Issued by the root mount's role: the root signed it directly.
      const fromRoot = await issueFromVault(vault, 'root-issued.test', [ADMIN]);

      const refused = await sidecar.get('web', fromRoot, vault.caPem).then(
        (res) => res.status,
        () => 'refused',
      );

      expect(refused).toBe('refused');
      expect(app.raw()).not.toContain('sa/admin');
      await vi.waitFor(() => expect(sidecar.logs().some((l) => l.reason === 'untrusted_issuer')).toBe(true), { timeout: 5000 });
      const line = sidecar.logs().find((l) => l.reason === 'untrusted_issuer');
      expect(String(line?.detail)).toMatch(/lists only as the parent of its issuers/);

      const own = await vaultApi<{ data: { certificate: string; private_key: string } }>(vault, 'POST', `${mount}/issue/${role}`, {
        common_name: 'client.test',
        uri_sans: 'spiffe://test/ns/default/sa/client',
        ttl: '10m',
      });
      const res = await sidecar.get('web', { cert: own.data.certificate, key: own.data.private_key }, vault.caPem);
      expect(res.status).toBe(200);
      await sidecar.assertAlive();
    } finally {
      app.close();
    }
  });
});
