/**
 * Outside review (issue 27): a handshake started before a CRL change finishes on the context its
 * TCP connection was accepted with (Node binds the secure context at accept), which had no CRL
 * listing the peer; the refresh closed only connections already watched, so a peer about to be
 * revoked could open TCP connections, hold back its ClientHello, and after the CRL landed finish
 * the handshake and keep the connection until its notAfter. Now a connection is checked against
 * the CRLs loaded when its handshake completes, and closed at once if they list its certificate.
 * Real TLS server and client; the CRL source is what the trust store feeds (crlsOf).
 */
import '../../src/identity/x509-setup.js';
import type { webcrypto } from 'node:crypto';
import { once } from 'node:events';
import type http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import * as x509 from '@peculiar/x509';
import { expect, it } from 'vitest';
import type { CrlSource } from '../../src/identity/trust.js';
import { ConnectionDeadlines, watchInboundConnections } from '../../src/proxy/certificate-deadline.js';

const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const pemKey = async (k: webcrypto.CryptoKey) =>
  `-----BEGIN PRIVATE KEY-----\n${Buffer.from(await crypto.subtle.exportKey('pkcs8', k))
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n`;

async function material() {
  const caKeys = await crypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=review27 CA',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    keys: caKeys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  const leaf = async (serial: string, cn: string) => {
    const keys = await crypto.subtle.generateKey(alg, true, ['sign', 'verify']);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: `CN=${cn}`,
      issuer: ca.subject,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
      publicKey: keys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: alg,
      extensions: [
        new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: cn }]),
        new x509.ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']),
      ],
    });
    return { cert: cert.toString('pem'), key: await pemKey(keys.privateKey) };
  };
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.subject,
    thisUpdate: new Date(Date.now() - 1000),
    nextUpdate: new Date(Date.now() + 86_400_000),
    entries: [{ serialNumber: '0badc0de', revocationDate: new Date() }],
    signingKey: caKeys.privateKey,
    signingAlgorithm: alg,
  });
  return {
    ca: ca.toString('pem'),
    server: await leaf('1234', 'localhost'),
    client: await leaf('0badc0de', 'client.test'),
    crl: crl
      .toString('pem')
      .replace(/BEGIN CRL/, 'BEGIN X509 CRL')
      .replace(/END CRL/, 'END X509 CRL'),
  };
}

it('closes a connection whose handshake completes after a CRL listing its certificate was loaded', async () => {
  const m = await material();
  let crls: string[] = [];
  const listeners: (() => void)[] = [];
  const source: CrlSource = { crlPems: () => crls, onChange: (l) => listeners.push(l) };
  const closed: string[] = [];
  const deadlines = new ConnectionDeadlines({
    listener: 'in',
    crls: source,
    metrics: { connectionsClosed: { inc: (l: { reason: string }) => closed.push(l.reason) } } as never,
    audit: { record: () => undefined },
  });
  const server = tls.createServer({ cert: m.server.cert, key: m.server.key, ca: [m.ca], requestCert: true, rejectUnauthorized: true });
  watchInboundConnections(server, 'tcp', deadlines);
  server.on('secureConnection', (s) => s.pipe(s)); // echo
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const tlsOpts = { cert: m.client.cert, key: m.client.key, ca: [m.ca], servername: 'localhost' };
  try {
    // Control: a connection established before the CRL change is closed by it.
    const before = tls.connect({ port, host: '127.0.0.1', ...tlsOpts });
    await once(before, 'secureConnect');
    const beforeClosed = once(before, 'close');

    // The attack: TCP accepted (bound to the context of now, without the CRL), ClientHello held back.
    const raw = net.connect(port, '127.0.0.1');
    await once(raw, 'connect');
    await new Promise((r) => setTimeout(r, 100));

    // The trust refresh lands: the CRL lists the client's serial.
    crls = [m.crl];
    server.setSecureContext({ cert: m.server.cert, key: m.server.key, ca: [m.ca], crl: m.crl });
    for (const l of listeners) l();
    await beforeClosed;
    expect(closed).toEqual(['peer_certificate_revoked']);

    // The held-back handshake completes on the old context: closed at once all the same.
    const late = tls.connect({ socket: raw, ...tlsOpts });
    late.on('error', () => undefined);
    const lateClosed = once(late, 'close');
    await once(late, 'secureConnect');
    late.write('still here?');
    await lateClosed;
    expect(closed).toEqual(['peer_certificate_revoked', 'peer_certificate_revoked']);
    expect(deadlines.size).toBe(0);
  } finally {
    server.close();
  }
});

for (const kind of ['h2', 'http'] as const) {
  it(`forwards nothing a ${kind} peer sent with a handshake completed after a CRL revoking it was loaded (second review)`, async () => {
    const m = await material();
    let crls: string[] = [];
    const listeners: (() => void)[] = [];
    const closed: string[] = [];
    const deadlines = new ConnectionDeadlines({
      listener: 'in',
      crls: { crlPems: () => crls, onChange: (l) => listeners.push(l) },
      metrics: { connectionsClosed: { inc: (l: { reason: string }) => closed.push(l.reason) } } as never,
      audit: { record: () => undefined },
    });
    const serverOptions = { cert: m.server.cert, key: m.server.key, ca: [m.ca], requestCert: true, rejectUnauthorized: true };
    const server =
      kind === 'h2' ? http2.createSecureServer({ ...serverOptions, ALPNProtocols: ['h2'] }) : https.createServer(serverOptions);
    let reached = 0;
    server.on('stream', (stream: http2.ServerHttp2Stream) => {
      reached++;
      stream.respond({ ':status': 200 });
      stream.end();
    });
    server.on('request', (_req: unknown, res: http.ServerResponse) => {
      reached++;
      res.end();
    });
    watchInboundConnections(server, kind, deadlines);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      // TCP accepted before the refresh (bound to the context without the CRL), ClientHello held back.
      const raw = net.connect(port, '127.0.0.1');
      await once(raw, 'connect');
      crls = [m.crl];
      (server as tls.Server).setSecureContext({ ...serverOptions, crl: m.crl });
      for (const l of listeners) l();
      const tlsOptions = { socket: raw, cert: m.client.cert, key: m.client.key, ca: [m.ca], servername: 'localhost' };
      if (kind === 'h2') {
        // The requests go out with the client's Finished, as a client pipelining at once does.
        const client = http2.connect('https://localhost', {
          createConnection: () => tls.connect({ ...tlsOptions, ALPNProtocols: ['h2'] }),
        });
        client.on('error', () => undefined);
        const requests = Array.from({ length: 20 }, (_, i) => {
          const req = client.request({ ':method': 'POST', ':path': `/transfer${i}` });
          req.on('error', () => undefined);
          req.end('pay');
          return once(req, 'close');
        });
        await Promise.all(requests);
        client.close();
      } else {
        const socket = tls.connect(tlsOptions);
        socket.on('error', () => undefined);
        socket.write('POST /transfer HTTP/1.1\r\nhost: localhost\r\ncontent-length: 3\r\n\r\npay');
        await once(socket, 'close');
      }
      expect(reached).toBe(0);
      expect(closed).toEqual(['peer_certificate_revoked']);
    } finally {
      server.close();
    }
  });
}

it('cuts an outbound h2 session whose server certificate a CRL loaded since the dial revokes, without a throw (final review)', async () => {
  const m = await material();
  const closed: string[] = [];
  const deadlines = new ConnectionDeadlines({
    listener: 'out',
    crls: { crlPems: () => [m.crl], onChange: () => undefined },
    metrics: { connectionsClosed: { inc: (l: { reason: string }) => closed.push(l.reason) } } as never,
    audit: { record: () => undefined },
  });
  // The upstream presents the revoked certificate; the dial's context (CA only) predates the CRL.
  const server = http2.createSecureServer({ cert: m.client.cert, key: m.client.key });
  let reached = 0;
  server.on('stream', (stream) => {
    reached++;
    stream.respond({ ':status': 200 });
    stream.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  try {
    const session = http2.connect(`https://client.test:${port}`, {
      createConnection: () => tls.connect({ host: '127.0.0.1', port, ca: [m.ca], servername: 'client.test', ALPNProtocols: ['h2'] }),
    });
    session.on('error', () => undefined);
    const ended = once(session, 'close');
    // As outbound-h2.ts watches its sessions.
    session.once('connect', () => deadlines.watch(session.socket as tls.TLSSocket, () => session.close()));
    const req = session.request({ ':method': 'POST', ':path': '/pay' });
    req.on('error', () => undefined);
    req.end('pay');
    await ended;
    expect(closed).toEqual(['peer_certificate_revoked']);
    expect(reached).toBe(0);
  } finally {
    server.close();
  }
});
