/**
 * PKCS#12 bundles as people make them: openssl 3's default (PBES2/AES), `-legacy` (RC2/3DES),
 * keytool's own (Java 17), RSA and EC. Each is served by a files-source sidecar and a client with
 * a certificate from the same CA completes an mTLS request. Every RSA bundle used to fail to open.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useEchoApp } from '../support/fixtures.js';
import { TestPki } from '../support/pki.js';
import { httpsRequest, startSidecar } from '../support/sidecars.js';

const pki = TestPki.create('p12');
const client = pki.leaf('client', { cn: 'client.test', uris: ['spiffe://test/ns/default/sa/client'] });
const passwordFile = path.join(pki.dir, 'p12-password');
writeFileSync(passwordFile, 'changeit\n');
const app = useEchoApp();

function run(command: string, args: string[]): void {
  execFileSync(command, args, { cwd: pki.dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A bundle for a leaf of `key` type, written by `writer`. */
function bundle(name: string, key: 'rsa' | 'ec', writer: 'openssl' | 'openssl-legacy' | 'keytool'): string {
  const leaf = pki.leaf(name, { cn: `${name}.test`, dns: ['localhost'], rsa: key === 'rsa' });
  const file = path.join(pki.dir, `${name}.p12`);
  const exportArgs = [
    'pkcs12',
    '-export',
    '-in',
    leaf.certFile,
    '-inkey',
    leaf.keyFile,
    '-certfile',
    pki.ca.certFile,
    '-passout',
    'pass:changeit',
  ];
  if (writer === 'openssl-legacy') {
    run('openssl', [...exportArgs, '-legacy', '-out', file]);
    return file;
  }
  run('openssl', [...exportArgs, '-name', name, '-out', writer === 'keytool' ? `${file}.src` : file]);
  if (writer === 'keytool') {
    // keytool rewrites the keystore with its own encryption and MAC, as a Java team's keystore is.
    run('keytool', [
      '-importkeystore',
      '-noprompt',
      '-srckeystore',
      `${file}.src`,
      '-srcstoretype',
      'PKCS12',
      '-srcstorepass',
      'changeit',
      '-destkeystore',
      file,
      '-deststoretype',
      'PKCS12',
      '-deststorepass',
      'changeit',
    ]);
  }
  return file;
}

describe.each([
  ['rsa', 'openssl'],
  ['rsa', 'openssl-legacy'],
  ['rsa', 'keytool'],
  ['ec', 'openssl'],
  ['ec', 'keytool'],
] as const)('a %s bundle written by %s', (key, writer) => {
  it('is served, and a client completes an mTLS request', async () => {
    const name = `${key}-${writer}`;
    const pkcs12 = bundle(name, key, writer);
    const sidecar = await startSidecar({
      identity: { source: 'files', files: { pkcs12, passwordFile, ca: pki.ca.certFile } },
      inbound: [{ name: 'web', listen: '127.0.0.1:0', target: `127.0.0.1:${app.port()}` }],
    });
    expect(sidecar.store.current()?.info.subject).toContain(`${name}.test`);
    const res = await httpsRequest(sidecar.listenerAddress('web').port, { cert: client.cert, key: client.key, ca: pki.ca.cert });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).caller).toContain('spiffe://test/ns/default/sa/client');
  });
});
