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
    if (headers[':path'] === '/helloworld.Greeter/Refuse') {
      // Refuses at once, without reading the request stream, as a gRPC server denying a call does
      // (Node then asks the caller to stop sending with RST_STREAM NO_ERROR).
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '7', 'grpc-message': 'denied' }));
      stream.end();
      return;
    }
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

/** Sidecar B in front of the app and sidecar A calling B, both in h2 mode; A's listener port. */
async function startPair(): Promise<number> {
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
          // Short, so that a caller falling silent mid-call is cut within the test.
          limits: { idleTimeout: '2s' },
        },
      ],
    },
    env,
  );
  return a.listenerAddress('greeter').port;
}

it('carries an h2 call with its body and trailers through two sidecars', async () => {
  const port = await startPair();
  const session = http2.connect(`http://127.0.0.1:${port}`);
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

/** One echo call on `session`: the body the app sent back. */
function echoCall(session: http2.ClientHttp2Session, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': '/helloworld.Greeter/SayHello', 'content-type': 'application/grpc' });
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
    req.end(text);
  });
}

it('ends a call the app answers before reading its stream, and the session carries the next', async () => {
  // Found by trying http mode's early-answer case in h2: the app's complete answer reached the
  // client, but its call never ended — the client waited on a flow-control window nobody read.
  const port = await startPair();
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => undefined);
  try {
    const refused = await new Promise<{ status: unknown; trailers: http2.IncomingHttpHeaders; rstCode: number | undefined }>(
      (resolve, reject) => {
        const req = session.request({
          ':method': 'POST',
          ':path': '/helloworld.Greeter/Refuse',
          'content-type': 'application/grpc',
          te: 'trailers',
        });
        let status: unknown;
        let trailers: http2.IncomingHttpHeaders = {};
        const hung = setTimeout(() => reject(new Error('the refused call never ended')), 5000);
        req.on('response', (h) => {
          status = h[':status'];
        });
        req.on('trailers', (t) => {
          trailers = t;
        });
        req.resume();
        req.on('error', reject);
        req.on('close', () => {
          clearTimeout(hung);
          resolve({ status, trailers, rstCode: req.rstCode });
        });
        // 1 MiB: far more than the flow-control windows the sidecars and the app open.
        req.end(Buffer.alloc(1024 * 1024, 'x'));
      },
    );
    expect(refused).toEqual({
      status: 200,
      trailers: expect.objectContaining({ 'grpc-status': '7' }),
      rstCode: http2.constants.NGHTTP2_NO_ERROR,
    });
    expect(await echoCall(session, 'still here')).toBe('still here');
  } finally {
    session.close();
  }
});

it('after the app answered early, cuts a caller that falls silent mid-request and survives one that resets', async () => {
  const port = await startPair();
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => undefined);
  /** A refused call whose caller sends 256 KiB and then does `then` once it has the answer. */
  const refusedThen = (then: (req: http2.ClientHttp2Stream) => void) =>
    new Promise<{ status: unknown; ms: number }>((resolve) => {
      const req = session.request({ ':method': 'POST', ':path': '/helloworld.Greeter/Refuse', 'content-type': 'application/grpc' });
      let status: unknown;
      let started = 0;
      req.on('response', (h) => {
        status = h[':status'];
      });
      req.on('end', () => {
        started = Date.now();
        then(req);
      });
      req.resume();
      req.on('error', () => undefined);
      req.on('close', () => resolve({ status, ms: Date.now() - started }));
      req.write(Buffer.alloc(256 * 1024, 's')); // never ended
    });
  try {
    const reset = await refusedThen((req) => req.close(http2.constants.NGHTTP2_CANCEL));
    expect(reset.status).toBe(200);
    expect(await echoCall(session, 'still served')).toBe('still served');
    // Last: a silent session is closed at the same idleTimeout, with this stream.
    const silent = await refusedThen(() => undefined);
    expect(silent.status).toBe(200);
    expect(silent.ms).toBeLessThan(5000); // the outbound's idleTimeout is 2 s
  } finally {
    session.close();
  }
});

it('keeps a busy session open past idleTimeout: idle means no open call for idleTimeout, not time since it connected', async () => {
  const port = await startPair();
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => undefined);
  let closedAt = 0;
  session.on('close', () => {
    closedAt = Date.now();
  });
  try {
    // A call every 0.5 s for three times the outbound's idleTimeout (2 s), on the one session.
    for (let i = 0; i < 12; i++) {
      expect(await echoCall(session, `call ${i}`)).toBe(`call ${i}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(closedAt).toBe(0);
  } finally {
    session.close();
  }
});
