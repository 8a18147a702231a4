/**
 * Certificates as people have them, each through two sidecars (A's outbound → B's inbound) in
 * every mode: EC P-256 and P-384, RSA 2048/3072/4096, Ed25519, a chain with an intermediate, a
 * CN-only certificate without SANs, lifetimes from one minute to 825 days — each published exactly
 * once — and PKCS#12 bundles written by openssl 3 (default and `-legacy`) and keytool. Ed25519
 * from files works too (Node's TLS takes it); the keys the sidecar makes itself for Vault's sign
 * are EC or RSA (identity.keyType), which every peer accepts.
 */
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sidecar } from '../../src/sidecar.js';
import { useEchoApp } from '../support/fixtures.js';
import { type LeafOptions, type Pem, TestPki } from '../support/pki.js';
import { startSidecar } from '../support/sidecars.js';

const pki = TestPki.create('matrix');
const passwordFile = path.join(pki.dir, 'p12-password');
writeFileSync(passwordFile, 'changeit\n');
const echo = useEchoApp();
let h2app: http2.Http2Server;
let tcpApp: net.Server;

beforeAll(async () => {
  h2app = http2.createServer();
  h2app.on('stream', (stream, headers) => {
    stream.respond({ ':status': 200 });
    stream.end(String(headers['x-forwarded-client-cert'] ?? ''));
  });
  tcpApp = net.createServer((socket) => socket.pipe(socket));
  await Promise.all([
    new Promise<void>((resolve) => h2app.listen(0, '127.0.0.1', resolve)),
    new Promise<void>((resolve) => tcpApp.listen(0, '127.0.0.1', resolve)),
  ]);
});

afterAll(() => {
  h2app.close();
  tcpApp.close();
});

type Case = {
  leaf?: Omit<LeafOptions, 'cn' | 'dns'>;
  noSan?: boolean;
  intermediate?: boolean;
  seconds?: number;
  pkcs12?: 'openssl' | 'openssl-legacy' | 'keytool';
};
const CASES: [string, Case][] = [
  ['EC P-256', {}],
  ['EC P-384', { leaf: { keyType: 'ec-p384' } }],
  ['RSA 2048', { leaf: { keyType: 'rsa-2048' } }],
  ['RSA 3072', { leaf: { keyType: 'rsa-3072' } }],
  ['RSA 4096', { leaf: { keyType: 'rsa-4096' } }],
  ['Ed25519', { leaf: { keyType: 'ed25519' } }],
  ['a chain with an intermediate', { intermediate: true }],
  ['no SAN (CN only)', { noSan: true }],
  ['an 825-day lifetime', { leaf: { days: 825 } }],
  ['a one-minute lifetime', { seconds: 60 }],
  ['PKCS#12 (RSA) from openssl 3', { leaf: { keyType: 'rsa-2048' }, pkcs12: 'openssl' }],
  ['PKCS#12 (RSA) from openssl -legacy', { leaf: { keyType: 'rsa-2048' }, pkcs12: 'openssl-legacy' }],
  ['PKCS#12 (RSA) from keytool', { leaf: { keyType: 'rsa-2048' }, pkcs12: 'keytool' }],
  ['PKCS#12 (EC) from openssl 3', { pkcs12: 'openssl' }],
  ['PKCS#12 (EC) from keytool', { pkcs12: 'keytool' }],
];
const MODES = ['http', 'h2', 'tcp'] as const;

let counter = 0;
async function certificate(name: string, c: Case): Promise<{ pem: Pem; chain: string }> {
  const file = `${name}-${counter++}`;
  const dns = c.noSan ? [] : [name];
  if (c.seconds) return { pem: await pki.shortLived(file, name, dns, c.seconds), chain: '' };
  const signer = c.intermediate ? pki.intermediate(`${file}-ca`) : undefined;
  const pem = pki.leaf(file, { cn: name, dns, ...c.leaf, ...(signer ? { signer } : {}) });
  return { pem, chain: signer?.cert ?? '' };
}

/** Files for a sidecar: the leaf followed by its intermediate, as people bundle them. */
async function filesFor(name: string, c: Case): Promise<Record<string, unknown>> {
  const { pem, chain } = await certificate(name, c);
  if (c.pkcs12) return { source: 'files', files: { pkcs12: pki.pkcs12(pem, c.pkcs12), passwordFile, ca: pki.ca.certFile } };
  const certFile = `${pem.certFile}.bundle`;
  writeFileSync(certFile, pem.cert + chain);
  // Each sidecar's own intermediate, the CA file the root only: peers bring their intermediate.
  const deep = c.intermediate ? { peerIntermediates: true } : {};
  return { source: 'files', files: { cert: certFile, key: pem.keyFile, ca: pki.ca.certFile, ...deep } };
}

const target = (mode: (typeof MODES)[number]) =>
  mode === 'http' ? echo.port() : mode === 'h2' ? (h2app.address() as net.AddressInfo).port : (tcpApp.address() as net.AddressInfo).port;

async function call(mode: (typeof MODES)[number], port: number): Promise<string> {
  if (mode === 'http') return (await fetch(`http://127.0.0.1:${port}/matrix`)).text();
  if (mode === 'h2') {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const req = session.request({ ':path': '/matrix' });
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    await once(req, 'end');
    session.close();
    return body;
  }
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.end('ping over tcp');
  let body = '';
  socket.on('data', (c) => {
    body += c;
  });
  await once(socket, 'close');
  return body;
}

const published = async (sidecar: Sidecar) =>
  (await sidecar.metrics.certRenewals.get()).values.find((v) => v.labels.result === 'success')?.value;

describe.each(CASES)('%s', (_name, c) => {
  it.each(MODES)('carries a call in %s mode between two sidecars, each certificate published once', async (mode) => {
    const b = await startSidecar({
      identity: await filesFor('b.matrix.test', c),
      inbound: [{ name: 'in', mode, listen: '127.0.0.1:0', target: `127.0.0.1:${target(mode)}` }],
    });
    const a = await startSidecar({
      identity: await filesFor('a.matrix.test', c),
      outbound: [
        { name: 'out', mode, listen: '127.0.0.1:0', target: `127.0.0.1:${b.listenerAddress('in').port}`, serverName: 'b.matrix.test' },
      ],
    });
    const answer = await call(mode, a.listenerAddress('out').port);
    if (mode === 'tcp') expect(answer).toBe('ping over tcp');
    else expect(answer).toContain('CN=a.matrix.test');
    expect(await published(a)).toBe(1);
    expect(await published(b)).toBe(1);
    await Promise.all([a.stop(0), b.stop(0)]);
  });
});
