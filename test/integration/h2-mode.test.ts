/**
 * HTTP/2 through two sidecars in h2 mode (a gRPC-shaped call: POST, application/grpc, a
 * grpc-status trailer): app A → cleartext h2 → outbound of A → mTLS h2 → inbound of B → cleartext
 * h2 → app B.
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { startSidecar, stopAllSidecars, vaultSection } from '../support/sidecars.js';

const vault = inject('vault');
const env = { VAULT_TOKEN: vault.rootToken };
let app: http2.Http2Server;

beforeAll(async () => {
  // Answers like a gRPC server: echoes the request body back, names the caller, ends with trailers.
  app = http2.createServer();
  app.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      stream.respond(
        { ':status': 200, 'content-type': 'application/grpc', 'x-caller': String(headers['x-forwarded-client-cert'] ?? '') },
        { waitForTrailers: true },
      );
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'OK' }));
      stream.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  await stopAllSidecars();
  app.close();
});

it('carries an h2 call with its body and trailers through two sidecars', async () => {
  const b = await startSidecar(
    {
      vault: vaultSection(vault),
      identity: { commonName: 'greeter.test', dnsNames: ['greeter.test'], ttl: '10m' },
      inbound: [{ name: 'grpc', mode: 'h2', listen: '127.0.0.1:0', target: `127.0.0.1:${(app.address() as AddressInfo).port}` }],
    },
    env,
  );
  const a = await startSidecar(
    {
      vault: vaultSection(vault),
      identity: { commonName: 'client.test', uriSans: ['spiffe://test/ns/default/sa/grpc-client'], ttl: '10m' },
      outbound: [
        {
          name: 'greeter',
          mode: 'h2',
          listen: '127.0.0.1:0',
          target: `127.0.0.1:${b.listenerAddress('grpc').port}`,
          serverName: 'greeter.test',
        },
      ],
    },
    env,
  );
  const session = http2.connect(`http://127.0.0.1:${a.listenerAddress('greeter').port}`);
  try {
    const call = () =>
      new Promise<{ headers: http2.IncomingHttpHeaders; body: string; trailers: http2.IncomingHttpHeaders }>((resolve, reject) => {
        const req = session.request({
          ':method': 'POST',
          ':path': '/helloworld.Greeter/SayHello',
          'content-type': 'application/grpc',
          te: 'trailers',
        });
        let headers: http2.IncomingHttpHeaders = {};
        let trailers: http2.IncomingHttpHeaders = {};
        let body = '';
        req.on('response', (h) => {
          headers = h;
        });
        req.on('trailers', (t) => {
          trailers = t;
        });
        req.on('data', (c) => {
          body += c;
        });
        req.on('end', () => resolve({ headers, body, trailers }));
        req.on('error', reject);
        req.end('hello over h2');
      });
    // Two calls on one client session: multiplexed, both relayed.
    const [first, second] = await Promise.all([call(), call()]);
    for (const res of [first, second]) {
      expect(res.headers[':status']).toBe(200);
      expect(res.body).toBe('hello over h2');
      expect(res.trailers['grpc-status']).toBe('0');
      expect(String(res.headers['x-caller'])).toContain('URI=spiffe://test/ns/default/sa/grpc-client');
    }
  } finally {
    session.close();
  }
});
