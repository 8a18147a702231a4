/**
 * Listener limits on real sockets: a connection cap that leaves open connections alone, a slow
 * header sender cut off without harming others, and a bounded upstream dial.
 */
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';
import { startSidecar, stopAllSidecars } from '../support/sidecars.js';

afterAll(() => stopAllSidecars());

const devIdentity = { source: 'dev', commonName: 'limits.test', dnsNames: ['localhost'] };

function openSocket(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Sends raw bytes and resolves with everything received until the server closes (or `waitMs`). */
function converse(socket: net.Socket, bytes: string, waitMs: number): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    let text = '';
    let closed = false;
    socket.on('data', (c) => {
      text += c.toString();
    });
    socket.once('close', () => {
      closed = true;
      resolve({ text, closed });
    });
    socket.write(bytes);
    setTimeout(() => resolve({ text, closed }), waitMs);
  });
}

it('closes connections beyond maxConnections while the open ones keep working', async () => {
  const sidecar = await startSidecar({
    identity: devIdentity,
    outbound: [{ name: 'capped', listen: '127.0.0.1:0', target: `127.0.0.1:${await freePort()}`, limits: { maxConnections: 2 } }],
  });
  const port = sidecar.listenerAddress('capped').port;
  const [first, second] = [await openSocket(port), await openSocket(port)];
  const third = await openSocket(port);
  const refused = await converse(third, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 1000);
  expect(refused).toEqual({ text: '', closed: true });
  const answered = await converse(first, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 3000);
  expect(answered.text).toMatch(/^HTTP\/1\.1 502/);
  second.destroy();
});

it('answers a slow header sender with 408 and closes it, without harming another client', async () => {
  const sidecar = await startSidecar({
    identity: devIdentity,
    outbound: [{ name: 'guarded', listen: '127.0.0.1:0', target: `127.0.0.1:${await freePort()}`, limits: { headersTimeout: '1s' } }],
  });
  const port = sidecar.listenerAddress('guarded').port;
  const slow = converse(await openSocket(port), 'GET / HTTP/1.1\r\nHost: x\r\n', 5000);
  const normal = await converse(await openSocket(port), 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 3000);
  expect(normal.text).toMatch(/^HTTP\/1\.1 502/);
  const cut = await slow;
  expect(cut.closed).toBe(true);
  expect(cut.text).toMatch(/^HTTP\/1\.1 408/);
});

it('gives up dialling an upstream that never completes the TLS handshake, with a JSON 502', async () => {
  // Accepts TCP and then says nothing, like a hung server.
  const silent = net.createServer(() => {});
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  try {
    const sidecar = await startSidecar({
      identity: devIdentity,
      outbound: [
        {
          name: 'hung',
          listen: '127.0.0.1:0',
          target: `127.0.0.1:${(silent.address() as net.AddressInfo).port}`,
          serverName: 'localhost',
          limits: { connectTimeout: '1s' },
        },
      ],
    });
    const res = await fetch(`http://127.0.0.1:${sidecar.listenerAddress('hung').port}/`);
    expect(res.status).toBe(502);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('SIDECAR_UPSTREAM_UNREACHABLE');
    expect(body.error.message).toContain('ETIMEDOUT');
  } finally {
    silent.close();
  }
});

it('gives up on a silent upstream in h2 and tcp modes too, at limits.connectTimeout (h2 calls once waited for ever)', async () => {
  const silent = net.createServer(() => {});
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const target = `127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
  try {
    const sidecar = await startSidecar({
      identity: devIdentity,
      outbound: (['h2', 'tcp'] as const).map((mode) => ({
        name: `hung-${mode}`,
        mode,
        listen: '127.0.0.1:0',
        target,
        serverName: 'localhost',
        limits: { connectTimeout: '1s' },
      })),
    });
    const started = performance.now();
    const session = http2.connect(`http://127.0.0.1:${sidecar.listenerAddress('hung-h2').port}`);
    session.on('error', () => undefined);
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = session.request({ ':path': '/svc/Call' });
      let body = '';
      let status = 0;
      req.setEncoding('utf8');
      req.on('response', (h) => {
        status = Number(h[':status']);
      });
      req.on('data', (c: string) => {
        body += c;
      });
      req.on('end', () => resolve({ status, body }));
      req.on('error', reject);
      req.end();
    });
    session.close();
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'SIDECAR_UPSTREAM_UNREACHABLE' } });
    expect(answer.body).toContain('ETIMEDOUT');
    expect(performance.now() - started).toBeLessThan(5000);

    const tcpStarted = performance.now();
    const socket = net.connect(sidecar.listenerAddress('hung-tcp').port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('close', resolve));
    expect(performance.now() - tcpStarted).toBeLessThan(5000);
  } finally {
    silent.close();
  }
});
