/**
 * HTTP/1.1 semantics through two sidecars (client → outbound of A → inbound of B → app), with
 * Vault certificates and real sockets: streamed bodies without a length both ways, Expect:
 * 100-continue, repeated response headers, hop-by-hop headers stripped in both directions, an app
 * that goes silent, and a client that leaves mid-response.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { DevCertificateAuthority } from '../../src/identity/dev-ca.js';
import type { Sidecar } from '../../src/sidecar.js';
import { startSidecar, stopAllSidecars, vaultSection } from '../support/sidecars.js';

const vault = inject('vault');
const env = { VAULT_TOKEN: vault.rootToken };

/** What the app saw of the last request, and whether it saw a response abandoned. */
const seen: { headers?: http.IncomingHttpHeaders; body?: string; streamClosedEarly?: Promise<boolean> } = {};
let app: http.Server;
let outbound: Sidecar;

beforeAll(async () => {
  app = http.createServer((req, res) => {
    seen.headers = req.headers;
    if (req.url === '/silent') return; // never answers
    if (req.url === '/endless') {
      // Streams until its response is abandoned; reports whether that happened.
      res.writeHead(200, { 'content-type': 'text/plain' });
      const timer = setInterval(() => res.write('x'.repeat(1024)), 5);
      seen.streamClosedEarly = new Promise((resolve) => {
        res.once('close', () => {
          clearInterval(timer);
          resolve(!res.writableFinished);
        });
      });
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.body = Buffer.concat(chunks).toString();
      // No content-length: Node sends this chunked, in three pieces.
      res.writeHead(201, [
        'set-cookie',
        'a=1',
        'set-cookie',
        'b=2',
        'x-private',
        'only for this hop',
        'connection',
        'x-private',
        'x-kept',
        'yes',
      ]);
      res.write(`got ${seen.body.length} bytes;`);
      setTimeout(() => {
        res.write(' streamed');
        res.end(';done');
      }, 20);
    });
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const inbound = await startSidecar(
    {
      vault: vaultSection(vault),
      identity: { commonName: 'store.test', dnsNames: ['store.test'], ttl: '10m' },
      inbound: [
        { name: 'store', listen: '127.0.0.1:0', target: `127.0.0.1:${(app.address() as AddressInfo).port}`, limits: { idleTimeout: '1s' } },
      ],
    },
    env,
  );
  outbound = await startSidecar(
    {
      vault: vaultSection(vault),
      identity: { commonName: 'shopper.test', uriSans: ['spiffe://test/ns/default/sa/shopper'], ttl: '10m' },
      outbound: [
        { name: 'store', listen: '127.0.0.1:0', target: `127.0.0.1:${inbound.listenerAddress('store').port}`, serverName: 'store.test' },
      ],
    },
    env,
  );
});

afterAll(async () => {
  await stopAllSidecars();
  app.closeAllConnections();
  app.close();
});

function call(path: string, init: { headers?: Record<string, string>; body?: () => AsyncIterable<string> } = {}) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: outbound.listenerAddress('store').port, path, method: init.body ? 'PUT' : 'GET', headers: init.headers },
      (res) => {
        let body = '';
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    if (!init.body) return req.end();
    const source = init.body();
    void (async () => {
      for await (const piece of source) req.write(piece);
      req.end();
    })();
  });
}

async function* slowPieces(): AsyncIterable<string> {
  for (let i = 0; i < 5; i++) {
    yield 'y'.repeat(10_000);
    await new Promise((r) => setTimeout(r, 10));
  }
}

it('streams a body without a length to the app and a chunked response back, whole', async () => {
  const res = await call('/upload', { body: slowPieces });
  expect(res.status).toBe(201);
  expect(seen.body).toBe('y'.repeat(50_000));
  expect(seen.headers?.['transfer-encoding']).toBe('chunked');
  expect(res.body).toBe('got 50000 bytes; streamed;done');
});

it('passes an Expect: 100-continue upload through', async () => {
  const res = await call('/upload', { headers: { expect: '100-continue', 'content-length': '50000' }, body: slowPieces });
  expect(res.status).toBe(201);
  expect(seen.body).toHaveLength(50_000);
  expect(seen.headers?.expect).toBeUndefined();
});

it('keeps repeated response headers and drops hop-by-hop ones in both directions', async () => {
  const res = await call('/headers', { headers: { connection: 'x-client-private', 'x-client-private': 'secret', 'x-client-kept': '1' } });
  expect(seen.headers?.['x-client-private']).toBeUndefined();
  expect(seen.headers?.['x-client-kept']).toBe('1');
  // The app learns who called, from the outbound sidecar's Vault certificate.
  expect(seen.headers?.['x-forwarded-client-cert']).toContain('URI=spiffe://test/ns/default/sa/shopper');
  expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
  expect(res.headers['x-private']).toBeUndefined();
  expect(res.headers['x-kept']).toBe('yes');
});

it('answers a JSON 502 with a code when the app stays silent past idleTimeout', async () => {
  const res = await call('/silent');
  expect(res.status).toBe(502);
  const body = JSON.parse(res.body) as { error: { code: string; message: string } };
  expect(body.error.code).toBe('SIDECAR_APP_UNREACHABLE');
  expect(body.error.message).toContain('UND_ERR_HEADERS_TIMEOUT');
});

it('stops pulling a response from the app when the client leaves mid-stream', async () => {
  const socket = net.connect({ host: '127.0.0.1', port: outbound.listenerAddress('store').port });
  socket.write('GET /endless HTTP/1.1\r\nHost: store\r\n\r\n');
  await new Promise<void>((resolve) => socket.once('data', () => resolve()));
  socket.destroy();
  expect(await seen.streamClosedEarly).toBe(true);
});

it('names the likely cause when the upstream refuses this sidecar’s certificate', async () => {
  // The upstream (its own dev CA) does not trust the caller's CA; the caller trusts the upstream.
  const upstream = await startSidecar({
    identity: { source: 'dev', commonName: 'vault-free.test', dnsNames: ['localhost'] },
    inbound: [{ name: 'strict', listen: '127.0.0.1:0', target: `127.0.0.1:${(app.address() as AddressInfo).port}` }],
  });
  const strangers = await DevCertificateAuthority.create('a CA the upstream does not trust');
  const caller = await strangers.issue({ commonName: 'stranger.test', ttlSeconds: 600 });
  const dir = mkdtempSync(path.join(tmpdir(), 'stranger-'));
  const file = (name: string, text: string) => {
    writeFileSync(path.join(dir, name), text, { mode: 0o600 });
    return path.join(dir, name);
  };
  const stranger = await startSidecar({
    identity: {
      source: 'files',
      files: {
        cert: file('tls.crt', caller.certPem),
        key: file('tls.key', caller.keyPem),
        ca: file('ca.crt', [...(upstream.store.current()?.bundle.trustPem ?? []), ...caller.trustPem].join('\n')),
      },
    },
    outbound: [
      { name: 'strict', listen: '127.0.0.1:0', target: `127.0.0.1:${upstream.listenerAddress('strict').port}`, serverName: 'localhost' },
    ],
  });
  const res = await fetch(`http://127.0.0.1:${stranger.listenerAddress('strict').port}/`);
  expect(res.status).toBe(502);
  const body = (await res.json()) as { error: { code: string; message: string } };
  expect(body.error.code).toBe('SIDECAR_UPSTREAM_HANDSHAKE_FAILED');
  expect(body.error.message).toContain("check that it trusts this sidecar's CA");
});
