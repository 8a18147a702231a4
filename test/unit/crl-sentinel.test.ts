/**
 * The mechanism behind `crl: closed` with no CRL loaded (crl-sentinel.ts): Node checks no
 * revocation at all for a context without CRLs, and with the sentinel loaded a certificate whose
 * issuer has no CRL is refused. Real openssl-made certificates over a real socket.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterAll, expect, it } from 'vitest';
import { createCrlSentinel } from '../../src/tls/crl-sentinel.js';
import { TestPki } from '../support/pki.js';

const pki = TestPki.create('sentinel');
const server = pki.leaf('server', { cn: 'localhost', dns: ['localhost'] });
const client = pki.leaf('client', { cn: 'client.test' });
const servers: tls.Server[] = [];
afterAll(() => {
  for (const s of servers) s.close();
});

/** The client's outcome against a server with `crl`: 'served' or the server's verification error. */
async function handshake(crl: string[] | undefined): Promise<string> {
  let refusal = '';
  const s = tls.createServer(
    { cert: server.cert, key: server.key, ca: [pki.ca.cert], requestCert: true, rejectUnauthorized: true, ...(crl ? { crl } : {}) },
    (socket) => socket.end('served'),
  );
  servers.push(s);
  s.on('tlsClientError', (_err, socket) => {
    refusal = String((socket as tls.TLSSocket).authorizationError ?? _err.message);
  });
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const socket = tls.connect({
    port: (s.address() as AddressInfo).port,
    host: '127.0.0.1',
    ...client,
    ca: pki.ca.cert,
    servername: 'localhost',
  });
  socket.on('error', () => undefined);
  let answer = '';
  socket.on('data', (c: Buffer) => {
    answer += c.toString();
  });
  await once(socket, 'close');
  return answer || refusal;
}

it('without any CRL, OpenSSL checks no revocation: the client is served', async () => {
  expect(await handshake(undefined)).toBe('served');
});

it('with only the sentinel loaded, a certificate whose issuer has no CRL is refused', async () => {
  expect(await handshake([await createCrlSentinel()])).toMatch(/UNABLE_TO_GET_CRL|unable to get certificate CRL/);
});
