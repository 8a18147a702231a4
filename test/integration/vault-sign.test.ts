/**
 * The private key never leaves the pod: with `vault.pki.method: sign` (the default) the sidecar
 * makes its key pair and sends Vault a CSR. Every request and response between the sidecar and a
 * real Vault is recorded by a proxy in between: under `sign` no private key crosses it; under
 * `issue`, Vault's key does (which is why it is not the default).
 */
import { createPublicKey, X509Certificate } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import { Sidecar } from '../../src/sidecar.js';
import { waitFor } from '../support/cli.js';
import { capturingLogger } from '../support/logs.js';
import { startSidecar, stopAllSidecars } from '../support/sidecars.js';

const vault = inject('vault');
const exchanges: { path: string; request: string; response: string }[] = [];
let proxy: http.Server;

beforeAll(async () => {
  proxy = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const request = Buffer.concat(chunks).toString();
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) if (typeof value === 'string' && name !== 'host') headers[name] = value;
      const answer = await fetch(`${vault.address}${req.url}`, { method: req.method, headers, body: request || undefined });
      const response = await answer.text();
      exchanges.push({ path: req.url ?? '', request, response });
      res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' });
      res.end(response);
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  await stopAllSidecars();
  proxy.close();
});

const viaProxy = () => `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;

it('has a CSR signed, and no private key crosses the network', async () => {
  const before = exchanges.length;
  const sidecar = await startSidecar(
    {
      vault: { address: viaProxy(), pki: { mount: vault.pkiMount, role: vault.role } },
      identity: { commonName: 'signed.test', uriSans: ['spiffe://test/ns/default/sa/signed'], ttl: '10m' },
    },
    { VAULT_TOKEN: vault.rootToken },
  );
  const mine = exchanges.slice(before);
  const sign = mine.find((e) => e.path.includes(`/${vault.pkiMount}/sign/${vault.role}`));
  expect(sign?.request).toContain('BEGIN CERTIFICATE REQUEST');
  expect(mine.some((e) => e.path.includes('/issue/'))).toBe(false);
  for (const exchange of mine) {
    expect(exchange.request).not.toMatch(/PRIVATE KEY|private_key/);
    expect(exchange.response).not.toMatch(/PRIVATE KEY|"private_key"/);
  }
  // The certificate Vault signed carries the key made in the pod.
  const published = sidecar.store.current()?.bundle;
  const cert = new X509Certificate(published?.certPem ?? '');
  expect(cert.publicKey.export({ format: 'pem', type: 'spki' })).toBe(
    createPublicKey(published?.keyPem ?? '').export({ format: 'pem', type: 'spki' }),
  );
  expect(cert.subjectAltName).toContain('spiffe://test/ns/default/sa/signed');
});

it('says what to check when the role refuses the key type the pod made', async () => {
  // The test role admits EC P-256 keys only.
  const { logger, lines } = capturingLogger();
  const config = buildConfig(
    {
      vault: { address: vault.address, pki: { mount: vault.pkiMount, role: vault.role } },
      identity: { commonName: 'rsa-signed.test', ttl: '10m', keyType: 'rsa-2048', renewal: { minBackoff: '1s', maxBackoff: '2s' } },
      admin: { listen: '127.0.0.1:0' },
    },
    { VAULT_TOKEN: vault.rootToken },
  );
  const sidecar = await Sidecar.create(config, logger);
  const starting = sidecar.start();
  try {
    await waitFor(() => lines.some((l) => l.code === 'SIDECAR_PKI_ISSUE_REJECTED'), 10_000, 'the refused CSR');
    const line = lines.find((l) => l.code === 'SIDECAR_PKI_ISSUE_REJECTED');
    expect(String(line?.msg)).toContain(`sign/${vault.role}`);
    expect(String(line?.msg)).toContain('identity.keyType');
    expect(line?.reason).toEqual({ reason: 'issue_rejected', operation: 'issue', status: 400 });
    expect(sidecar.store.current()).toBeUndefined();
  } finally {
    await sidecar.stop(0);
    await starting;
  }
});

it('still issues with method issue, where Vault makes the key and sends it', async () => {
  const before = exchanges.length;
  const sidecar = await startSidecar(
    {
      vault: { address: viaProxy(), pki: { mount: vault.pkiMount, role: vault.role, method: 'issue' } },
      identity: { commonName: 'issued.test', ttl: '10m' },
    },
    { VAULT_TOKEN: vault.rootToken },
  );
  const issue = exchanges.slice(before).find((e) => e.path.includes(`/${vault.pkiMount}/issue/${vault.role}`));
  expect(issue?.response).toContain('"private_key"');
  expect(sidecar.store.current()?.info.subject).toContain('issued.test');
});
