/**
 * Issue 29, defect 8: diagnostics that point the wrong way, each seen with real sidecars and
 * sockets — a peer sidecar killed mid-request is a reset, not a trust problem; a header block too
 * large to forward is a clear refusal, not a retryable reset; an app that refuses connections is
 * named so; a client going away is not counted as abuse. And the connection gate's evictions of h2
 * connections send GOAWAY first (issue 29, defect 2: every server-side close of an h2 connection).
 */
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { TestPki } from '../support/pki.js';
import { freePort } from '../support/ports.js';
import { PREFACE } from './h2-frames.js';
import {
  type RecordingH2App,
  type SidecarUnderAttack,
  startRecordingH2App,
  startSidecarUnderAttack,
  tcpRelay,
  tlsConnect,
} from './harness.js';

let pki: TestPki;
let app: RecordingH2App;
/** Inbound h2 to `app` (listener `grpc`), and inbound h2 to a port nobody listens on (`refused`). */
let server: SidecarUnderAttack;
/** Outbound h2 (`peer`) to `server`'s `grpc` listener. */
let client: SidecarUnderAttack;

beforeAll(async () => {
  pki = TestPki.create();
  app = await startRecordingH2App();
  server = await startSidecarUnderAttack({
    pki,
    inbound: [
      { name: 'grpc', mode: 'h2', target: `127.0.0.1:${app.port}` },
      { name: 'refused', mode: 'h2', target: `127.0.0.1:${await freePort()}` },
      { name: 'small', mode: 'h2', target: `127.0.0.1:${app.port}`, limits: { maxConnections: 2 } },
    ],
  });
  client = await startSidecarUnderAttack({
    pki,
    outbound: [{ name: 'peer', mode: 'h2', target: `127.0.0.1:${server.port('grpc')}`, serverName: 'localhost' }],
  });
});

afterAll(() => app.close());

/** A TCP relay in front of `port` whose resetAll() sends RST to the side that connected to it. */
async function resettingRelay(port: number): Promise<{ port: number; resetAll(): void; close(): void }> {
  const clients = new Set<net.Socket>();
  const relay = net.createServer((client) => {
    clients.add(client);
    const upstream = net.connect(port, '127.0.0.1');
    client.on('close', () => {
      clients.delete(client);
      upstream.destroy();
    });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  return {
    port: (relay.address() as net.AddressInfo).port,
    resetAll: () => {
      for (const client of clients) client.resetAndDestroy();
    },
    close: () => relay.close(),
  };
}

interface Answer {
  headers: http2.IncomingHttpHeaders;
  body: string;
  trailers: http2.IncomingHttpHeaders;
}

/** One request on `session`; `end` false leaves the request body open. */
async function call(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, end = true): Promise<Answer> {
  const req = session.request({ ':method': 'POST', ':path': '/pkg.Svc/Call', ...headers });
  req.on('error', () => undefined);
  if (end) req.end('x');
  else req.write('x');
  let trailers: http2.IncomingHttpHeaders = {};
  req.on('trailers', (t) => {
    trailers = t;
  });
  const [answer] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
  let body = '';
  req.on('data', (c: Buffer) => {
    body += c.toString();
  });
  await once(req, 'end');
  if (!end) req.close();
  return { headers: answer, body, trailers };
}

function cleartext(port: number): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`, { maxSendHeaderBlockLength: 1 << 20 });
  session.on('error', () => undefined);
  return session;
}

function mtls(target: SidecarUnderAttack, listener: string, pem = target.good): http2.ClientHttp2Session {
  const session = http2.connect(`https://127.0.0.1:${target.port(listener)}`, {
    cert: pem.cert,
    key: pem.key,
    ca: target.pki.ca.cert,
    servername: 'localhost',
    maxSendHeaderBlockLength: 1 << 20,
  });
  session.on('error', () => undefined);
  return session;
}

it('a header block too large to forward is refused clearly: RESOURCE_EXHAUSTED for gRPC, 431 otherwise, not a reset', async () => {
  const session = cleartext(client.port('peer'));
  const big = 'v'.repeat(64 * 1024);
  const grpc = await call(session, { 'content-type': 'application/grpc', 'x-big': big });
  expect(grpc.headers[':status']).toBe(200);
  expect(grpc.headers['x-sidecar-error']).toBe('SIDECAR_HEADERS_TOO_LARGE');
  // Trailers-Only: RESOURCE_EXHAUSTED (8), which gRPC clients do not retry as they do UNAVAILABLE.
  expect(grpc.headers['grpc-status']).toBe('8');
  expect(String(grpc.headers['grpc-message'])).toMatch(/header/i);
  const plain = await call(session, { 'x-big': big });
  expect(plain.headers[':status']).toBe(431);
  expect(plain.headers['x-sidecar-error']).toBe('SIDECAR_HEADERS_TOO_LARGE');
  // The session still serves ordinary calls.
  expect((await call(session, { 'content-type': 'application/grpc' })).headers[':status']).toBe(200);
  session.close();
  expect(client.logs('upstream_reset')).toEqual([]);
});

it('an app that refuses connections is named: ECONNREFUSED, not ERR_HTTP2_STREAM_CANCEL', async () => {
  const session = mtls(server, 'refused');
  const answer = await call(session, {});
  session.close();
  expect(answer.headers[':status']).toBe(502);
  expect(answer.headers['x-sidecar-error']).toBe('SIDECAR_APP_UNREACHABLE');
  expect(answer.body).toContain('ECONNREFUSED');
  expect(answer.body).not.toContain('ERR_HTTP2_STREAM_CANCEL');
  await vi.waitFor(() => expect(server.logs('app_unreachable').map((l) => l.reason)).toContain('ECONNREFUSED'));
  expect(server.logs('app_unreachable').map((l) => l.reason)).not.toContain('ERR_HTTP2_STREAM_CANCEL');
});

it('a client that goes away (TCP reset mid-call) is not counted as an h2 protocol error; a bad preface still is', async () => {
  const before = (await server.metric('sidecar_h2_sessions_refused_total', { listener: 'grpc', reason: 'protocol_error' })) ?? 0;
  // A client process exiting with unread data: the kernel resets its connections (a TCP relay in
  // front of the listener sends the RST; Node cannot reset a socket TLS wraps).
  const relay = await tcpRelay(server.port('grpc'));
  for (let i = 0; i < 3; i++) {
    const session = http2.connect(`https://127.0.0.1:${relay.port}`, {
      cert: server.good.cert,
      key: server.good.key,
      ca: server.pki.ca.cert,
      servername: 'localhost',
    });
    session.on('error', () => undefined);
    const req = session.request({ ':method': 'POST', ':path': '/pkg.Svc/Call' });
    req.on('error', () => undefined);
    req.write('x');
    await vi.waitFor(() => expect(app.open()).toBeGreaterThan(0));
    relay.resetAll();
    await vi.waitFor(() => expect(app.open()).toBe(0));
    session.destroy();
  }
  relay.close();
  expect((await server.metric('sidecar_h2_sessions_refused_total', { listener: 'grpc', reason: 'protocol_error' })) ?? 0).toBe(before);
  // An actual protocol error is still counted (the abuse docs/security.md describes).
  const raw = await tlsConnect(server, 'grpc', server.good, ['h2']);
  raw.on('error', () => undefined);
  raw.write(PREFACE);
  raw.write(Buffer.from([0, 0, 4, 0xff, 0, 0, 0, 0, 0]));
  raw.write(Buffer.from('garbage that is not a frame at all, repeated, repeated, repeated'));
  await vi.waitFor(
    async () =>
      expect(
        (await server.metric('sidecar_h2_sessions_refused_total', { listener: 'grpc', reason: 'protocol_error' })) ?? 0,
      ).toBeGreaterThan(before),
    { timeout: 5000 },
  );
  raw.destroy();
});

it('a connection evicted by the gate (identity_share) gets GOAWAY before it is closed', async () => {
  const other = pki.leaf('other-client', { cn: 'other.test', uris: ['spiffe://test/ns/default/sa/other'] });
  // One identity takes both slots, idle after a call each.
  const first = mtls(server, 'small');
  const second = mtls(server, 'small');
  expect((await call(first, {})).headers[':status']).toBe(200);
  expect((await call(second, {})).headers[':status']).toBe(200);
  const seen: string[] = [];
  let lastStreamId = -1;
  let code = -1;
  first.on('goaway', (c: number, last: number) => {
    seen.push('goaway');
    code = c;
    lastStreamId = last;
  });
  first.on('close', () => seen.push('close'));
  // Another identity arrives: the oldest idle connection of the first is evicted.
  const third = mtls(server, 'small', other);
  expect((await call(third, {})).headers[':status']).toBe(200);
  await vi.waitFor(() => expect(seen).toContain('close'), { timeout: 5000 });
  expect(seen[0]).toBe('goaway');
  expect(code).toBe(http2.constants.NGHTTP2_NO_ERROR);
  expect(lastStreamId).toBe(1);
  expect(server.logs('connection_evicted').map((l) => l.reason)).toContain('identity_share');
  second.close();
  third.close();
});

it('a peer whose connection is reset mid-request (after it accepted it) is a reset, not a trust problem', async () => {
  // The outbound sidecar reaches `server` through a TCP relay that resets its side of the connection.
  const relay = await resettingRelay(server.port('grpc'));
  const through = await startSidecarUnderAttack({
    pki,
    outbound: [{ name: 'relayed', mode: 'h2', target: `127.0.0.1:${relay.port}`, serverName: 'localhost' }],
  });
  const session = cleartext(through.port('relayed'));
  // A call answered first: the sidecar has read the peer's SETTINGS (the peer accepted it). A reset
  // drops what the kernel holds unread, so without it the SETTINGS could be lost with the reset.
  expect((await call(session, { 'content-type': 'application/grpc' })).headers[':status']).toBe(200);
  const answer = call(session, { 'content-type': 'application/grpc', ':path': '/pkg.Svc/Reset' }, false);
  await vi.waitFor(() => expect(app.streams.map((h) => h[':path'])).toContain('/pkg.Svc/Reset'));
  relay.resetAll();
  const { headers, body } = await answer;
  session.close();
  relay.close();
  expect(headers[':status']).toBe(502);
  expect(headers['x-sidecar-error']).toBe('SIDECAR_UPSTREAM_RESET');
  expect(body).toContain('ECONNRESET');
  expect(body).not.toMatch(/trust|CA\b/);
  expect(await through.metric('sidecar_tls_handshake_failures_total', { listener: 'relayed' })).toBeUndefined();
  expect(through.logs('upstream_handshake_failed')).toEqual([]);
});

it("a peer that refuses this sidecar's certificate is still reported as a handshake failure", async () => {
  // A sidecar of another CA that trusts `server`'s CA; `server` does not trust it.
  const strangers = TestPki.create();
  const own = strangers.leaf('stranger', { cn: 'stranger.test', uris: ['spiffe://test/ns/default/sa/stranger'] });
  const trust = path.join(strangers.dir, 'both-cas.crt');
  writeFileSync(trust, `${strangers.ca.cert}\n${pki.ca.cert}`);
  const stranger = await startSidecarUnderAttack({
    pki: strangers,
    extra: { identity: { source: 'files', files: { cert: own.certFile, key: own.keyFile, ca: trust } } },
    outbound: [{ name: 'stranger', mode: 'h2', target: `127.0.0.1:${server.port('grpc')}`, serverName: 'localhost' }],
  });
  const session = cleartext(stranger.port('stranger'));
  const { headers, body } = await call(session, { 'content-type': 'application/grpc' });
  session.close();
  expect(headers[':status']).toBe(502);
  expect(headers['x-sidecar-error']).toBe('SIDECAR_UPSTREAM_HANDSHAKE_FAILED');
  // The peer's refusal arrives as its TLS alert or, read after the request was written, as a close.
  expect(body).toMatch(/trusts this sidecar|ALERT_UNKNOWN_CA/);
  await vi.waitFor(async () =>
    expect(await stranger.metric('sidecar_tls_handshake_failures_total', { listener: 'stranger' })).toBeGreaterThan(0),
  );
});

// Last: it kills the server sidecar.
it('a peer sidecar killed mid-request is a reset, not a handshake or trust failure', async () => {
  const session = cleartext(client.port('peer'));
  const answer = call(session, { 'content-type': 'application/grpc', ':path': '/pkg.Svc/Crash' }, false);
  await vi.waitFor(() => expect(app.streams.map((h) => h[':path'])).toContain('/pkg.Svc/Crash'));
  server.run.child.kill('SIGKILL');
  const { headers, body } = await answer;
  session.close();
  expect(headers[':status']).toBe(502);
  expect(headers['x-sidecar-error']).toBe('SIDECAR_UPSTREAM_RESET');
  expect(body).not.toMatch(/trust|CA\b/);
  expect(await client.metric('sidecar_tls_handshake_failures_total', { listener: 'peer' })).toBeUndefined();
  expect(client.logs('upstream_handshake_failed')).toEqual([]);
});
