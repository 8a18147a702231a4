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
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
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
