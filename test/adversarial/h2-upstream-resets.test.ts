/**
 * Defect 7, outbound: a stream the upstream refuses or resets on an established HTTP/2 connection
 * was reported as a failed mTLS handshake. Now the app gets a JSON 502 `SIDECAR_UPSTREAM_RESET`,
 * and no handshake failure is counted or audited.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TestPki } from '../support/pki.js';
import { type SidecarUnderAttack, startSidecarUnderAttack } from './harness.js';

let upstream: http2.Http2SecureServer;
let sidecar: SidecarUnderAttack;

beforeAll(async () => {
  const pki = TestPki.create();
  const cert = pki.leaf('upstream', { cn: 'upstream.test', dns: ['localhost'] });
  // An mTLS HTTP/2 server that refuses every stream (an overloaded or restarting upstream).
  upstream = http2.createSecureServer({ cert: cert.cert, key: cert.key, ca: pki.ca.cert, requestCert: true, rejectUnauthorized: true });
  upstream.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
  });
  upstream.on('sessionError', () => undefined);
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  sidecar = await startSidecarUnderAttack({
    pki,
    outbound: [{ name: 'refusing', mode: 'h2', target: `127.0.0.1:${(upstream.address() as AddressInfo).port}`, serverName: 'localhost' }],
  });
});

afterAll(() => upstream.close());

it('answers a refused stream with SIDECAR_UPSTREAM_RESET, not a handshake failure', async () => {
  const session = http2.connect(`http://127.0.0.1:${sidecar.port('refusing')}`);
  session.on('error', () => undefined);
  for (let i = 0; i < 5; i++) {
    const req = session.request({ ':method': 'POST', ':path': '/svc/Call' });
    req.end('x');
    const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
    req.resume();
    expect(headers[':status']).toBe(502);
    expect(headers['x-sidecar-error']).toBe('SIDECAR_UPSTREAM_RESET');
  }
  session.close();
  expect(await sidecar.metric('sidecar_tls_handshake_failures_total', { listener: 'refusing' })).toBeUndefined();
  expect(sidecar.logs('upstream_handshake_failed')).toEqual([]);
  expect(sidecar.logs('upstream_reset').length).toBeGreaterThan(0);
  await sidecar.assertAlive();
});
