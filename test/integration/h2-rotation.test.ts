/**
 * Rotation under HTTP/2 load: the outbound sidecar renews its certificate again and again while
 * an app keeps calls in flight through it; a rotation moves new streams to a new mTLS session and
 * lets the old one finish, so no call fails.
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DevCertificateAuthority, DevCertificateSource } from '../../src/identity/dev-ca.js';
import { H2Session } from '../../src/proxy/h2/h2-session.js';
import type { Sidecar } from '../../src/sidecar.js';
import { waitFor } from '../support/cli.js';
import { startSidecar, stopAllSidecars } from '../support/sidecars.js';

let app: http2.Http2Server;
let outbound: Sidecar;

beforeAll(async () => {
  app = http2.createServer();
  app.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.resume();
    stream.on('end', () => {
      if (stream.closed) return;
      stream.respond({ ':status': 200 });
      stream.end('ok');
    });
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  // One dev CA for both sidecars, so they trust each other.
  const source = new DevCertificateSource(await DevCertificateAuthority.create());
  const inbound = await startSidecar(
    {
      identity: { source: 'dev', commonName: 'server.test', dnsNames: ['localhost'] },
      inbound: [{ name: 'grpc', mode: 'h2', listen: '127.0.0.1:0', target: `127.0.0.1:${(app.address() as AddressInfo).port}` }],
    },
    {},
    { source },
  );
  outbound = await startSidecar(
    {
      identity: { source: 'dev', commonName: 'client.test', dnsNames: ['client.test'] },
      outbound: [
        {
          name: 'out',
          mode: 'h2',
          listen: '127.0.0.1:0',
          target: `127.0.0.1:${inbound.listenerAddress('grpc').port}`,
          serverName: 'localhost',
        },
      ],
    },
    {},
    { source },
  );
});

afterAll(async () => {
  await stopAllSidecars();
  app.close();
});

it('fails no call across 100 rotations under load', { timeout: 60_000 }, async () => {
  const session = http2.connect(`http://127.0.0.1:${outbound.listenerAddress('out').port}`);
  session.on('error', () => undefined);
  let ok = 0;
  const failures: string[] = [];
  let running = true;
  const call = () =>
    new Promise<void>((resolve) => {
      const req = session.request({ ':method': 'POST', ':path': '/svc/Call' });
      let body = '';
      let status = 0;
      req.on('response', (h) => {
        status = Number(h[':status']);
      });
      req.on('data', (c) => {
        body += c;
      });
      req.on('error', (err) => failures.push(err.message));
      req.on('close', () => {
        if (status === 200) ok++;
        else if (status) failures.push(`${status} ${body}`);
        resolve();
      });
      req.end('x');
    });
  const workers = Array.from({ length: 32 }, async () => {
    while (running) await call();
  });
  for (let i = 0; i < 100; i++) {
    const serial = outbound.store.current()?.info.serial;
    outbound.renewer.renewNow();
    await waitFor(() => outbound.store.current()?.info.serial !== serial, 5000, 'the rotation');
    await new Promise((r) => setTimeout(r, 10));
  }
  running = false;
  await Promise.all(workers);
  session.close();
  expect(failures).toEqual([]);
  expect(ok).toBeGreaterThan(500);
});

it('lets streams submitted in the same tick as a rotation complete on the old session', async () => {
  let generation = 1;
  const sessions = new H2Session(`http://127.0.0.1:${(app.address() as AddressInfo).port}`, () => ({}), { generation: () => generation });
  const old = sessions.get();
  await new Promise((resolve) => old.once('connect', resolve));
  // What a rotation looks like from the relay: streams go out on the current session, and the
  // session is replaced before nghttp2 has written them.
  const statuses = Array.from(
    { length: 20 },
    () =>
      new Promise<number | string>((resolve) => {
        const req = old.request({ ':method': 'POST', ':path': '/svc/Call' });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', (err: Error & { code?: string }) => resolve(err.code ?? err.message));
        req.resume();
        req.end('x');
      }),
  );
  generation++;
  expect(sessions.get() === old).toBe(false);
  expect(await Promise.all(statuses)).toEqual(Array(20).fill(200));
  sessions.close();
  old.close();
});

it('closes a session of an old generation that no call replaces, at its idle timeout', async () => {
  let generation = 1;
  const sessions = new H2Session(`http://127.0.0.1:${(app.address() as AddressInfo).port}`, () => ({}), {
    generation: () => generation,
    idleTimeoutMs: 300,
  });
  const old = sessions.get();
  await new Promise((resolve) => old.once('connect', resolve));
  const status = await new Promise<number>((resolve) => {
    const req = old.request({ ':method': 'POST', ':path': '/svc/Call' });
    req.on('response', (h) => resolve(Number(h[':status'])));
    req.resume();
    req.end('x');
  });
  expect(status).toBe(200);
  generation++; // a rotation, and then the app goes quiet: no call asks for the new session
  await new Promise((resolve) => setTimeout(resolve, 1000));
  expect(old.closed).toBe(true);
  sessions.close();
});
