/**
 * Defects 6 and 7: Node's default cipher list (CBC and static-RSA suites on TLS 1.2), client
 * renegotiation, CA certificates accepted as client leaves, and refusals reported with the wrong
 * reason or without the peer's address. The server key is RSA, so static-RSA suites could be
 * negotiated at all; openssl s_client is the client for the cipher checks.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import tls from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { TestPki } from '../support/pki.js';
import { type RecordingApp, type SidecarUnderAttack, startAppBehindSidecar, tlsConnect } from './harness.js';

let app: RecordingApp;
let sidecar: SidecarUnderAttack;

beforeAll(async () => {
  ({ app, sidecar } = await startAppBehindSidecar({}, { rsaServer: true }));
});

/** `openssl s_client` with the trusted client certificate; resolves with whether the handshake completed. */
function sClient(port: number, args: string[]): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${port}`, '-cert', sidecar.good.certFile, '-key', sidecar.good.keyFile, '-brief', ...args],
      { timeout: 10_000 },
      (err, stdout, stderr) => resolve({ ok: !err && /CONNECTION ESTABLISHED/.test(stdout + stderr), output: stdout + stderr }),
    );
    child.stdin?.end();
  });
}

describe('cipher suites (openssl s_client)', () => {
  it.each(['AES128-SHA', 'AES256-SHA256', 'AES128-GCM-SHA256', 'ECDHE-RSA-AES128-SHA', 'ECDHE-RSA-AES256-SHA384'])(
    'refuses TLS 1.2 with %s (CBC or static RSA)',
    async (cipher) => {
      const { ok } = await sClient(sidecar.port('web'), ['-tls1_2', '-cipher', cipher]);
      expect(ok).toBe(false);
    },
  );

  it.each(['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-CHACHA20-POLY1305'])(
    'accepts TLS 1.2 with %s',
    async (cipher) => {
      const { ok, output } = await sClient(sidecar.port('web'), ['-tls1_2', '-cipher', cipher]);
      expect(ok, output).toBe(true);
    },
  );

  it('accepts TLS 1.3', async () => {
    const { ok, output } = await sClient(sidecar.port('web'), ['-tls1_3']);
    expect(ok, output).toBe(true);
    expect(output).toContain('TLSv1.3');
  });

  it('refuses TLS 1.1', async () => {
    const { ok } = await sClient(sidecar.port('web'), ['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0']);
    expect(ok).toBe(false);
  });
});

it('refuses a client-initiated renegotiation', async () => {
  const socket = tls.connect({
    host: '127.0.0.1',
    port: sidecar.port('web'),
    cert: sidecar.good.cert,
    key: sidecar.good.key,
    ca: sidecar.pki.ca.cert,
    servername: 'localhost',
    maxVersion: 'TLSv1.2',
  });
  socket.on('error', () => undefined);
  await once(socket, 'secureConnect');
  const renegotiated = await new Promise<Error | null>((resolve) => {
    socket.renegotiate({ rejectUnauthorized: false }, (err) => resolve(err));
    socket.once('close', () => resolve(new Error('closed')));
  });
  expect(renegotiated).toBeInstanceOf(Error);
  socket.destroy();
  await sidecar.assertAlive('web');
});

describe('refusals carry one precise reason and the peer address', () => {
  async function attempt(cert: { cert: string; key: string }, ca = sidecar.pki.ca.cert): Promise<void> {
    const socket = tls.connect({
      host: '127.0.0.1',
      port: sidecar.port('web'),
      cert: cert.cert,
      key: cert.key,
      ca,
      servername: 'localhost',
    });
    socket.on('error', () => undefined);
    socket.once('secureConnect', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    // Not once(): it rejects on the 'error' a refused handshake emits.
    await new Promise((resolve) => socket.once('close', resolve));
  }

  async function expectRejected(reason: string, event = 'tls_handshake_rejected'): Promise<void> {
    await new Promise((r) => setTimeout(r, 100));
    expect(await sidecar.metric('sidecar_tls_handshake_failures_total', { listener: 'web', reason })).toBeGreaterThanOrEqual(1);
    const line = sidecar.logs(event).find((l) => l.reason === reason);
    expect(line, `no ${event} line with reason ${reason}: ${JSON.stringify(sidecar.logs(event))}`).toBeDefined();
    expect(line?.remoteAddress).toBe('127.0.0.1');
  }

  it('a CA certificate presented as a client leaf: ca_as_leaf', async () => {
    await attempt(sidecar.pki.leaf('ca-as-leaf', { cn: 'sneaky.test', caTrue: true }));
    await expectRejected('ca_as_leaf');
    expect(app.requests.some((r) => r.url === '/')).toBe(false);
  });

  it('a certificate not yet valid: not_yet_valid', async () => {
    await attempt(await sidecar.pki.notYetValid('tomorrow', 'early.test'));
    await expectRejected('not_yet_valid');
  });

  it('a certificate without clientAuth in its EKU: wrong_purpose', async () => {
    await attempt(sidecar.pki.leaf('server-only', { cn: 'server-only.test', eku: 'serverAuth' }));
    await expectRejected('wrong_purpose');
  });

  it('a certificate from another CA: unknown_ca', async () => {
    await attempt(TestPki.create('stranger').leaf('client', { cn: 'stranger.test' }));
    await expectRejected('unknown_ca');
  });

  it("a client that refuses the sidecar's certificate is reported as such, not as our refusal", async () => {
    // openssl (like curl, Go and Java) refuses with an alert during the handshake; Node's own client
    // checks after it and just closes.
    const { ok } = await sClient(sidecar.port('web'), ['-CAfile', TestPki.create('elsewhere').ca.certFile, '-verify_return_error']);
    expect(ok).toBe(false);
    await expectRejected('peer_refused_certificate', 'tls_handshake_failed');
  });

  it('is still serving good clients', async () => {
    await sidecar.assertAlive('web');
    const socket = await tlsConnect(sidecar, 'web');
    socket.destroy();
  });
});
