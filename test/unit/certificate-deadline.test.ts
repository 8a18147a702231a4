/**
 * ConnectionDeadlines on fake time (the real sockets and certificates: test/integration/
 * connection-deadline.test.ts): a certificate of years is waited for in steps past setTimeout's
 * 24.8-day limit, a timer is released with its connection, and a CRL closes only the connections
 * whose issuer lists their serial.
 */
import '../../src/identity/x509-setup.js';
import { EventEmitter } from 'node:events';
import type { TLSSocket } from 'node:tls';
import * as x509 from '@peculiar/x509';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import type { CrlSource } from '../../src/identity/trust.js';
import { ConnectionDeadlines } from '../../src/proxy/certificate-deadline.js';
import { normalizeSerial } from '../../src/proxy/revoked-serials.js';

const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

async function ca(name: string) {
  const keys = await crypto.subtle.generateKey(alg, false, ['sign', 'verify']);
  return { name: `CN=${name}`, keys };
}

async function leaf(issuer: Awaited<ReturnType<typeof ca>>, serial: string, notAfter: Date) {
  const keys = await crypto.subtle.generateKey(alg, false, ['sign', 'verify']);
  return x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: 'CN=peer.test',
    issuer: issuer.name,
    notBefore: new Date(Date.now() - 60_000),
    notAfter,
    publicKey: keys.publicKey,
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: alg,
  });
}

async function crl(issuer: Awaited<ReturnType<typeof ca>>, serials: string[]): Promise<string> {
  const made = await x509.X509CrlGenerator.create({
    issuer: issuer.name,
    thisUpdate: new Date(),
    nextUpdate: new Date(Date.now() + DAY),
    entries: serials.map((serialNumber) => ({ serialNumber, revocationDate: new Date() })),
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: alg,
  });
  return made.toString('pem');
}

/** A socket as far as the deadlines look at it: its peer certificate, as Node gives it, and close. */
function socketWith(cert: x509.X509Certificate): TLSSocket & { close(): void } {
  const socket = new EventEmitter() as EventEmitter & { destroyed: boolean; remoteAddress: string };
  socket.destroyed = false;
  socket.remoteAddress = '10.0.0.7';
  return Object.assign(socket, {
    getPeerCertificate: () => ({
      raw: Buffer.from(cert.rawData),
      valid_to: cert.notAfter.toUTCString(),
      serialNumber: cert.serialNumber.toUpperCase(),
      subject: { CN: 'peer.test' },
    }),
    close() {
      socket.destroyed = true;
      socket.emit('close');
    },
  }) as unknown as TLSSocket & { close(): void };
}

function deadlines(crls?: CrlSource, maxLifetimeMs?: number) {
  const closed: string[] = [];
  const audited: unknown[] = [];
  const d = new ConnectionDeadlines({
    listener: 'in',
    maxLifetimeMs,
    crls,
    metrics: { connectionsClosed: { inc: (labels: { reason: string }) => closed.push(labels.reason) } } as never,
    audit: { record: (event: unknown) => audited.push(event) },
  });
  return { d, closed, audited };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

it('waits for a certificate of two years in steps, and closes the connection a second after its notAfter', async () => {
  const issuer = await ca('test CA');
  const notAfter = new Date(Math.floor((Date.now() + 730 * DAY) / 1000) * 1000);
  const socket = socketWith(await leaf(issuer, '0a01', notAfter));
  const { d, closed, audited } = deadlines();
  const reasons: string[] = [];
  d.watch(socket, (reason) => reasons.push(reason));

  await vi.advanceTimersByTimeAsync(notAfter.getTime() - Date.now());
  expect(reasons).toEqual([]);
  await vi.advanceTimersByTimeAsync(1000);
  expect(reasons).toEqual(['peer_certificate_expired']);
  expect(closed).toEqual(['peer_certificate_expired']);
  expect(audited).toMatchObject([{ event: 'connection_closed', listener: 'in', peer: 'peer.test', reason: 'peer_certificate_expired' }]);
  expect(d.size).toBe(0);
});

it('releases the timer when the connection closes first', async () => {
  const issuer = await ca('test CA');
  const socket = socketWith(await leaf(issuer, '0a02', new Date(Date.now() + DAY)));
  const { d, closed } = deadlines(undefined, 60_000);
  d.watch(socket, () => undefined);
  expect(vi.getTimerCount()).toBe(1);
  socket.close();
  expect(vi.getTimerCount()).toBe(0);
  expect(d.size).toBe(0);
  await vi.advanceTimersByTimeAsync(2 * DAY);
  expect(closed).toEqual([]);
});

it('closes at limits.maxConnectionLifetime when it comes before the certificate ends', async () => {
  const issuer = await ca('test CA');
  const socket = socketWith(await leaf(issuer, '0a03', new Date(Date.now() + DAY)));
  const { d } = deadlines(undefined, 60_000);
  const reasons: string[] = [];
  d.watch(socket, (reason) => reasons.push(reason));
  await vi.advanceTimersByTimeAsync(60_000);
  expect(reasons).toEqual(['max_lifetime']);
});

it('closes on a CRL change only the connections whose own issuer lists their serial', async () => {
  const ours = await ca('our CA');
  const other = await ca('other CA');
  const later = new Date(Date.now() + DAY);
  const revoked = socketWith(await leaf(ours, '00beef01', later));
  const sameSerialOtherIssuer = socketWith(await leaf(other, '00beef01', later));
  const good = socketWith(await leaf(ours, '00beef02', later));
  let pems: string[] = [];
  const listeners: (() => void)[] = [];
  const { d, closed } = deadlines({ crlPems: () => pems, onChange: (l) => listeners.push(l) });
  const reasons = new Map<string, string>();
  d.watch(revoked, (reason) => reasons.set('revoked', reason));
  d.watch(sameSerialOtherIssuer, (reason) => reasons.set('other issuer', reason));
  d.watch(good, (reason) => reasons.set('good', reason));

  // Serial 00beef01 revoked by the other CA's CRL does not touch ours; then ours revokes it.
  pems = [await crl(other, ['0abc'])];
  for (const l of listeners) l();
  pems = [await crl(ours, ['beef01', '0abc'])];
  for (const l of listeners) l();
  expect([...reasons]).toEqual([['revoked', 'peer_certificate_revoked']]);
  expect(closed).toEqual(['peer_certificate_revoked']);
  expect(d.size).toBe(2);
});

it.each([
  ['00:BE:EF', 'BEEF'],
  ['0abc', 'ABC'],
  ['00', '0'],
])('normalizes serial %s to %s', (serial, normal) => {
  expect(normalizeSerial(serial)).toBe(normal);
});
