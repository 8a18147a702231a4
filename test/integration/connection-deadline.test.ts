/**
 * A connection ends with its peer's certificate (issue 27, defect 4): kept-alive HTTP/1.1, h2,
 * WebSocket and tcp connections whose client certificate expires, or is revoked in Vault and the
 * CRL refreshed, are closed; a good connection beside them is untouched; outbound, a pooled
 * connection to a peer whose server certificate expires is closed and the next request dials anew.
 * Real Vault, real sockets, certificates of a few seconds.
 */
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, expect, inject, it, vi } from 'vitest';
import type { Sidecar } from '../../src/sidecar.js';
import { parsePrometheus, sampleValue } from '../support/prometheus.js';
import { type IssuedCertificate, issueFromVault, startSidecar, stopAllSidecars, vaultSection } from '../support/sidecars.js';
import { vaultApi } from '../support/vault-api.js';

const vault = inject('vault');
const env = { VAULT_TOKEN: vault.rootToken };
const closers: (() => void)[] = [];
let httpPort = 0;
let h2Port = 0;
let echoPort = 0;

beforeAll(async () => {
  // HTTP/1.1: answers `ok`, after ?hold=ms; an upgrade (WebSocket) gets 101 and an echo that stays open.
  // ?stream: an answer that never ends (a chunk every 200 ms).
  const app = http.createServer((req, res) => {
    const query = new URL(req.url ?? '/', 'http://app').searchParams;
    if (query.has('stream')) {
      res.writeHead(200);
      const tick = setInterval(() => res.write('.'), 200);
      res.on('close', () => clearInterval(tick));
      return;
    }
    setTimeout(() => res.end('ok'), Number(query.get('hold') ?? 0));
  });
  app.on('upgrade', (_req, socket: net.Socket) => {
    socket.on('error', () => undefined);
    socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n');
    socket.on('data', (d: Buffer) => socket.write(d));
  });
  const h2app = http2.createServer();
  h2app.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200 });
    if (!String(headers[':path']).includes('stream')) return stream.end('ok');
    const tick = setInterval(() => stream.write('.'), 200);
    stream.on('close', () => clearInterval(tick));
  });
  const echo = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  for (const server of [app, h2app, echo]) {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => server.close());
  }
  closers.push(() => app.closeAllConnections());
  httpPort = (app.address() as net.AddressInfo).port;
  h2Port = (h2app.address() as net.AddressInfo).port;
  echoPort = (echo.address() as net.AddressInfo).port;
});

afterAll(async () => {
  await stopAllSidecars();
  for (const close of closers) close();
});

/** A sidecar with an http, an h2 and a tcp inbound listener in front of the apps. */
function inboundSidecar(name: string, extra: Record<string, unknown> = {}, ttl = '10m'): Promise<Sidecar> {
  return startSidecar(
    {
      vault: { ...vaultSection(vault), ...extra },
      identity: { commonName: `${name}.test`, dnsNames: ['localhost'], ttl },
      inbound: [
        { name: 'web', listen: '127.0.0.1:0', target: `127.0.0.1:${httpPort}` },
        { name: 'grpc', listen: '127.0.0.1:0', mode: 'h2', target: `127.0.0.1:${h2Port}` },
        { name: 'raw', listen: '127.0.0.1:0', mode: 'tcp', target: `127.0.0.1:${echoPort}` },
      ],
    },
    env,
  );
}

/** A client connection, and when it closed (undefined while open). */
interface Open {
  readonly name: string;
  closedAt: number | undefined;
  /** Everything the client read. */
  text: string;
}

function track(name: string, emitter: { once(event: 'close', l: () => void): unknown }): Open {
  const open: Open = { name, closedAt: undefined, text: '' };
  emitter.once('close', () => {
    open.closedAt = Date.now();
  });
  return open;
}

async function tlsTo(port: number, pem: IssuedCertificate, alpn?: string[]): Promise<tls.TLSSocket> {
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    cert: pem.cert,
    key: pem.key,
    ca: pem.ca,
    servername: 'localhost',
    ...(alpn ? { ALPNProtocols: alpn } : {}),
  });
  socket.on('error', () => undefined);
  await once(socket, 'secureConnect');
  return socket;
}

/** Writes `bytes` and waits until what was read contains `expected`. */
async function exchange(socket: tls.TLSSocket, open: Open, bytes: string, expected: string): Promise<void> {
  const before = open.text.length;
  socket.write(bytes);
  await vi.waitFor(() => expect(open.text.slice(before)).toContain(expected), { timeout: 5000, interval: 20 });
}

async function rawConnection(name: string, port: number, pem: IssuedCertificate): Promise<{ socket: tls.TLSSocket; open: Open }> {
  const socket = await tlsTo(port, pem);
  const open = track(name, socket);
  socket.on('data', (c: Buffer) => {
    open.text += c.toString('latin1');
  });
  return { socket, open };
}

/**
 * Opens, with `pem`, one connection of each kind and uses it once: a kept-alive HTTP/1.1
 * connection, one holding a request until `holdUntil` (in flight when the certificate ends), an
 * h2 session, a WebSocket and a tcp pipe.
 */
async function openEveryKind(sidecar: Sidecar, pem: IssuedCertificate, holdUntil: number): Promise<Open[]> {
  const web = sidecar.listenerAddress('web').port;
  const keepAlive = await rawConnection('keep-alive', web, pem);
  await exchange(keepAlive.socket, keepAlive.open, 'GET / HTTP/1.1\r\nhost: app\r\n\r\n', 'ok');

  const inFlight = await rawConnection('in-flight', web, pem);
  inFlight.socket.write(`GET /?hold=${Math.max(0, holdUntil - Date.now())} HTTP/1.1\r\nhost: app\r\n\r\n`);

  const ws = await rawConnection('websocket', web, pem);
  await exchange(ws.socket, ws.open, 'GET /chat HTTP/1.1\r\nhost: app\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n', '101');
  await exchange(ws.socket, ws.open, 'ping-1', 'ping-1');

  const raw = await rawConnection('tcp', sidecar.listenerAddress('raw').port, pem);
  await exchange(raw.socket, raw.open, 'hello', 'hello');

  const session = http2.connect(`https://127.0.0.1:${sidecar.listenerAddress('grpc').port}`, {
    cert: pem.cert,
    key: pem.key,
    ca: pem.ca,
    servername: 'localhost',
  });
  session.on('error', () => undefined);
  const h2 = track('h2', session);
  session.once('goaway', () => {
    h2.text += 'GOAWAY ';
  });
  const stream = session.request({ ':path': '/', ':method': 'GET' });
  stream.on('data', (c: Buffer) => {
    h2.text += c.toString();
  });
  stream.end();
  await vi.waitFor(() => expect(h2.text).toContain('ok'), { timeout: 5000, interval: 20 });
  return [keepAlive.open, inFlight.open, ws.open, raw.open, h2];
}

/** The request in flight was answered, with Connection: close; the h2 client got a GOAWAY. */
function expectAnsweredThenClosed(opened: Open[]): void {
  const inFlight = opened.find((o) => o.name === 'in-flight')?.text ?? '';
  expect(inFlight).toMatch(/^HTTP\/1\.1 200 /);
  expect(inFlight).toMatch(/\r\nconnection: close\r\n/i);
  expect(inFlight.endsWith('\r\n\r\nok')).toBe(true);
  expect(opened.find((o) => o.name === 'h2')?.text).toContain('GOAWAY');
}

async function closedCount(sidecar: Sidecar, reason: string): Promise<number> {
  const samples = parsePrometheus(await sidecar.metrics.text());
  let total = 0;
  for (const listener of ['web', 'grpc', 'raw'])
    total += sampleValue(samples, 'sidecar_connections_closed_total', { listener, reason }) ?? 0;
  return total;
}

it('closes kept-alive http, h2, WebSocket and tcp connections whose client certificate expires, and leaves a good one open', {
  timeout: 30_000,
}, async () => {
  const sidecar = await inboundSidecar('expiry');
  const good = await issueFromVault(vault, 'good.test');
  const expiring = await issueFromVault(vault, 'expiring.test', [], '6s');
  const notAfter = Date.parse(new X509Certificate(expiring.cert).validTo);
  // The in-flight request is answered 1.5 s after the sidecar's deadline (notAfter + 1 s).
  const opened = await openEveryKind(sidecar, expiring, notAfter + 2500);
  // An answer that never ends is cut IN_FLIGHT_GRACE_MS (10 s) after the certificate's end.
  const streaming = await rawConnection('streaming', sidecar.listenerAddress('web').port, expiring);
  await exchange(streaming.socket, streaming.open, 'GET /?stream HTTP/1.1\r\nhost: app\r\n\r\n', '.');
  const bystander = await rawConnection('good', sidecar.listenerAddress('web').port, good);
  await exchange(bystander.socket, bystander.open, 'GET / HTTP/1.1\r\nhost: app\r\n\r\n', 'ok');
  expect(opened.filter((o) => o.closedAt !== undefined).map((o) => o.name)).toEqual([]);

  await vi.waitFor(() => expect(opened.filter((o) => o.closedAt === undefined).map((o) => o.name)).toEqual([]), {
    timeout: notAfter - Date.now() + 6000,
    interval: 100,
  });
  // Not before the certificate ended.
  for (const o of opened) expect(o.closedAt, o.name).toBeGreaterThanOrEqual(notAfter);
  expect(streaming.open.closedAt).toBeUndefined();
  await vi.waitFor(() => expect(streaming.open.closedAt).toBeDefined(), { timeout: notAfter - Date.now() + 16_000, interval: 100 });
  expect(streaming.open.closedAt).toBeGreaterThanOrEqual(notAfter + 10_000);
  // The request in flight was answered, with Connection: close; the h2 client got a GOAWAY.
  expectAnsweredThenClosed(opened);
  expect(await closedCount(sidecar, 'peer_certificate_expired')).toBe(opened.length + 1);

  // The good connection beside them is still open and served.
  expect(bystander.open.closedAt).toBeUndefined();
  await exchange(bystander.socket, bystander.open, 'GET /again HTTP/1.1\r\nhost: app\r\n\r\n', 'ok');
  bystander.socket.destroy();
});

it('closes kept-alive http, h2, WebSocket and tcp connections whose client certificate Vault revokes, at the CRL refresh', {
  timeout: 30_000,
}, async () => {
  const sidecar = await inboundSidecar('revocation', { pki: { mount: vault.pkiMount, role: vault.role, refreshInterval: '1s' } });
  const good = await issueFromVault(vault, 'good.test');
  const revoked = await issueFromVault(vault, 'soon-revoked.test');
  // The request in flight is answered 6 s from now, after the CRL refresh that follows the revocation.
  const opened = await openEveryKind(sidecar, revoked, Date.now() + 6000);
  const bystander = await rawConnection('good', sidecar.listenerAddress('web').port, good);
  await exchange(bystander.socket, bystander.open, 'GET / HTTP/1.1\r\nhost: app\r\n\r\n', 'ok');

  await vaultApi(vault, 'POST', `${vault.pkiMount}/revoke`, { serial_number: revoked.serial });
  await vi.waitFor(() => expect(opened.filter((o) => o.closedAt === undefined).map((o) => o.name)).toEqual([]), {
    timeout: 12_000,
    interval: 100,
  });
  expectAnsweredThenClosed(opened);
  expect(await closedCount(sidecar, 'peer_certificate_revoked')).toBe(opened.length);

  expect(bystander.open.closedAt).toBeUndefined();
  await exchange(bystander.socket, bystander.open, 'GET /again HTTP/1.1\r\nhost: app\r\n\r\n', 'ok');
  bystander.socket.destroy();
});

it('closes a good connection at limits.maxConnectionLifetime', { timeout: 20_000 }, async () => {
  const sidecar = await startSidecar(
    {
      vault: vaultSection(vault),
      identity: { commonName: 'lifetime.test', dnsNames: ['localhost'], ttl: '10m' },
      inbound: [{ name: 'web', listen: '127.0.0.1:0', target: `127.0.0.1:${httpPort}`, limits: { maxConnectionLifetime: '2s' } }],
    },
    env,
  );
  const good = await issueFromVault(vault, 'good.test');
  const conn = await rawConnection('keep-alive', sidecar.listenerAddress('web').port, good);
  await exchange(conn.socket, conn.open, 'GET / HTTP/1.1\r\nhost: app\r\n\r\n', 'ok');
  await vi.waitFor(() => expect(conn.open.closedAt).toBeDefined(), { timeout: 8000, interval: 100 });
  expect(await closedCount(sidecar, 'max_lifetime')).toBe(1);
});

/** A TCP relay in front of `port`: each connection through it, and when it closed. */
async function relayTo(port: number): Promise<{ port: number; upstreams: Open[] }> {
  const upstreams: Open[] = [];
  const relay = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    upstreams.push(track(`upstream-${upstreams.length + 1}`, client));
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  closers.push(() => relay.close());
  return { port: (relay.address() as net.AddressInfo).port, upstreams };
}

it('outbound: closes the http pool connection, the h2 session and the tcp pipe to a peer whose server certificate expires; the next call dials anew', {
  timeout: 40_000,
}, async () => {
  // The peer renews its 10 s certificate at about two thirds of it; open connections keep the first.
  const peer = await inboundSidecar('peer', {}, '10s');
  const notAfter = peer.store.current()?.info.notAfter.getTime() ?? 0;
  // Relays in front of the peer show each connection the caller's sidecar opens, and its close.
  const relays = {
    web: await relayTo(peer.listenerAddress('web').port),
    grpc: await relayTo(peer.listenerAddress('grpc').port),
    raw: await relayTo(peer.listenerAddress('raw').port),
  };
  const outbound = (name: string, mode: string) => ({
    name: `${name}-out`,
    listen: '127.0.0.1:0',
    mode,
    target: `127.0.0.1:${relays[name as keyof typeof relays].port}`,
    serverName: 'localhost',
  });
  const caller = await startSidecar(
    {
      vault: vaultSection(vault),
      identity: { commonName: 'caller.test', ttl: '10m' },
      outbound: [outbound('web', 'http'), outbound('grpc', 'h2'), outbound('raw', 'tcp')],
    },
    env,
  );
  const httpOut = caller.listenerAddress('web-out').port;
  expect((await fetch(`http://127.0.0.1:${httpOut}/first`)).status).toBe(200);
  // The app's own h2 session and tcp connection to its sidecar, over cleartext loopback.
  const app = http2.connect(`http://127.0.0.1:${caller.listenerAddress('grpc-out').port}`);
  app.on('error', () => undefined);
  const h2Call = async () => {
    const stream = app.request({ ':path': '/', ':method': 'GET' });
    let body = '';
    stream.on('data', (c: Buffer) => {
      body += c.toString();
    });
    stream.end();
    await once(stream, 'close');
    return body;
  };
  expect(await h2Call()).toBe('ok');
  const pipe = net.connect(caller.listenerAddress('raw-out').port, '127.0.0.1');
  pipe.on('error', () => undefined);
  const piped = track('app tcp', pipe);
  pipe.on('data', (c: Buffer) => {
    piped.text += c.toString();
  });
  pipe.write('hello');
  await vi.waitFor(() => expect(piped.text).toBe('hello'), { timeout: 5000, interval: 20 });
  const first = Object.values(relays).map((r) => r.upstreams[0]);
  expect(first.map((u) => u?.closedAt)).toEqual([undefined, undefined, undefined]);

  await vi.waitFor(() => expect(first.filter((u) => u?.closedAt === undefined)).toEqual([]), {
    timeout: notAfter - Date.now() + 6000,
    interval: 100,
  });
  for (const u of first) expect(u?.closedAt).toBeGreaterThanOrEqual(notAfter);
  await vi.waitFor(() => expect(piped.closedAt).toBeDefined(), { timeout: 2000, interval: 50 });
  const samples = parsePrometheus(await caller.metrics.text());
  for (const listener of ['web-out', 'grpc-out', 'raw-out'])
    expect(sampleValue(samples, 'sidecar_connections_closed_total', { listener, reason: 'peer_certificate_expired' }), listener).toBe(1);

  // The next call, on the app's same connections to its sidecar, goes over a new one to the peer.
  expect((await fetch(`http://127.0.0.1:${httpOut}/second`)).status).toBe(200);
  expect(await h2Call()).toBe('ok');
  expect(relays.web.upstreams.map((u) => u.name)).toEqual(['upstream-1', 'upstream-2']);
  expect(relays.grpc.upstreams.map((u) => u.name)).toEqual(['upstream-1', 'upstream-2']);
  app.close();
});

it('outbound: an http answer or h2 stream still running when the peer certificate ends is cut 10 s later', {
  timeout: 40_000,
}, async () => {
  const peer = await inboundSidecar('streaming-peer', {}, '10s');
  const notAfter = peer.store.current()?.info.notAfter.getTime() ?? 0;
  const web = await relayTo(peer.listenerAddress('web').port);
  const grpc = await relayTo(peer.listenerAddress('grpc').port);
  const caller = await startSidecar(
    {
      vault: vaultSection(vault),
      identity: { commonName: 'caller.test', ttl: '10m' },
      outbound: [
        { name: 'out', listen: '127.0.0.1:0', target: `127.0.0.1:${web.port}`, serverName: 'localhost' },
        { name: 'grpc-out', listen: '127.0.0.1:0', mode: 'h2', target: `127.0.0.1:${grpc.port}`, serverName: 'localhost' },
      ],
    },
    env,
  );
  const answer = await fetch(`http://127.0.0.1:${caller.listenerAddress('out').port}/?stream`);
  const reader = answer.body?.getReader();
  void (async () => {
    while (reader && !(await reader.read().catch(() => ({ done: true }))).done);
  })();
  const app = http2.connect(`http://127.0.0.1:${caller.listenerAddress('grpc-out').port}`);
  app.on('error', () => undefined);
  const stream = app.request({ ':path': '/stream', ':method': 'GET' });
  stream.on('error', () => undefined);
  stream.resume();
  stream.end();
  const first = [web.upstreams, grpc.upstreams];
  await vi.waitFor(() => expect(first.map((u) => u[0]?.closedAt).filter((at) => at === undefined)).toEqual([]), {
    timeout: notAfter - Date.now() + 16_000,
    interval: 100,
  });
  for (const upstreams of first) expect(upstreams[0]?.closedAt).toBeGreaterThanOrEqual(notAfter + 10_000);
  const samples = parsePrometheus(await caller.metrics.text());
  for (const listener of ['out', 'grpc-out'])
    expect(sampleValue(samples, 'sidecar_connections_closed_total', { listener, reason: 'peer_certificate_expired' }), listener).toBe(1);
  app.destroy();
});
