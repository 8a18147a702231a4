/**
 * `cert inspect` as an operator runs it: the built CLI on openssl- and keytool-made files, and on a
 * live TLS endpoint; text for people, JSON for scripts.
 */
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { expect, it } from 'vitest';
import { spawnCli } from '../support/cli.js';
import { TestPki } from '../support/pki.js';

const pki = TestPki.create('inspect');
const intermediate = pki.intermediate('inspect-int');
const leaf = pki.leaf('orders', {
  cn: 'orders',
  dns: ['orders.svc'],
  uris: ['spiffe://cluster.local/ns/default/sa/orders'],
  signer: intermediate,
  days: 30,
});
const chainFile = path.join(pki.dir, 'orders-chain.pem');
writeFileSync(chainFile, leaf.cert + intermediate.cert);

async function inspect(args: string[]): Promise<{ code: unknown; stdout: string; stderr: string }> {
  const run = spawnCli(['cert', 'inspect', ...args]);
  const code = await run.exited;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

it('shows a PEM chain: names with the SPIFFE ID, issuer, validity, key and usages, leaf first', async () => {
  const { code, stdout } = await inspect([chainFile]);
  expect(code).toBe(0);
  expect(stdout).toMatch(/^certificate:\n {2}subject +CN=orders$/m);
  expect(stdout).toMatch(/SPIFFE ID +spiffe:\/\/cluster\.local\/ns\/default\/sa\/orders/);
  expect(stdout).toMatch(/DNS names +orders\.svc/);
  expect(stdout).toMatch(/validity +valid, expires in 2\dd \d+h/);
  expect(stdout).toMatch(/key +EC P-256/);
  expect(stdout).toMatch(/extended key usage +serverAuth, clientAuth/);
  expect(stdout).toMatch(/^chain\[1\]:\n {2}subject +CN=inspect intermediate inspect-int$/m);
});

it('opens a PKCS#12 keystore written by keytool, and prints JSON', async () => {
  const rsa = pki.leaf('orders-rsa', { cn: 'orders-rsa', dns: ['orders.svc'], keyType: 'rsa-3072' });
  const passwordFile = path.join(pki.dir, 'inspect-password');
  writeFileSync(passwordFile, 'changeit\n');
  const { code, stdout } = await inspect([pki.pkcs12(rsa, 'keytool'), '--password-file', passwordFile, '-o', 'json']);
  expect(code).toBe(0);
  const reports = JSON.parse(stdout);
  const report = reports.find((r: { subject: string }) => r.subject === 'CN=orders-rsa');
  expect(report).toMatchObject({ key: 'RSA 3072 bits', dnsNames: ['orders.svc'], isCa: false });
  expect(report.sha256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
});

it('shows what a live endpoint presents, and says what is wrong with a bad target', async () => {
  const server = tls.createServer({ cert: leaf.cert + intermediate.cert, key: leaf.key }, (socket) => socket.end());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const { code, stdout } = await inspect(['--connect', `127.0.0.1:${(server.address() as AddressInfo).port}`]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/subject +CN=orders$/m);
    expect(stdout).toMatch(/^chain\[1\]:/m);
  } finally {
    server.close();
  }
  const refused = await inspect(['--connect', 'localhost']);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toContain('--connect: "localhost" is not host:port');
  const missing = await inspect([path.join(pki.dir, 'nope.pem')]);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toMatch(/cannot read .*nope\.pem \(ENOENT\)/);
});
