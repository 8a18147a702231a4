/**
 * The sidecar against a real OpenBao/Vault dev server, with real sockets and real certificates:
 * issue and readiness, inbound mTLS accept and refuse, two sidecars chained, AppRole login.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startEchoApp } from '../../src/demo/echo-app.js';
import { DevCertificateAuthority } from '../../src/identity/dev-ca.js';
import type { Sidecar } from '../../src/sidecar.js';
import { waitFor } from '../support/cli.js';
import { parsePrometheus, sampleValue } from '../support/prometheus.js';
import { httpGet, httpsRequest, issueFromVault, startSidecar, stopAllSidecars, vaultSection } from '../support/sidecars.js';
import { vaultApi } from '../support/vault-api.js';

const vault = inject('vault');
const env = { VAULT_TOKEN: vault.rootToken };
let app: http.Server;
let appPort: number;

beforeAll(async () => {
  const started = await startEchoApp();
  app = started.server;
  appPort = started.address.port;
});

afterAll(async () => {
  await stopAllSidecars();
  app.closeAllConnections();
  app.close();
});

function serviceIdentity(name: string, ttl = '10m') {
  return {
    commonName: `${name}.test`,
    dnsNames: ['localhost', `${name}.test`],
    ipSans: ['127.0.0.1'],
    uriSans: [`spiffe://test/ns/default/sa/${name}`],
    ttl,
  };
}

describe('a sidecar started from configuration', () => {
  it('obtains a certificate from Vault PKI and turns ready', async () => {
    const sidecar = await startSidecar(
      {
        vault: vaultSection(vault),
        identity: serviceIdentity('ready'),
        inbound: [{ name: 'app', listen: '127.0.0.1:0', target: `127.0.0.1:${appPort}` }],
      },
      env,
    );
    const admin = sidecar.admin.address()?.port ?? 0;
    const ready = await httpGet(admin, '/readyz');
    expect(ready.status).toBe(200);
    const certs = JSON.parse((await httpGet(admin, '/certs')).body);
    expect(certs.subject).toContain('CN=ready.test');
    expect(certs.uris).toEqual(['spiffe://test/ns/default/sa/ready']);
    expect(certs.issuer).toContain('vault-mtls-sidecar test root');
    expect(JSON.stringify(certs)).not.toMatch(/PRIVATE KEY/);
  });
});

describe('inbound mTLS', () => {
  let port: number;
  let sidecar: Sidecar;

  beforeAll(async () => {
    sidecar = await startSidecar(
      {
        vault: vaultSection(vault),
        identity: serviceIdentity('inbound'),
        inbound: [{ name: 'app', listen: '127.0.0.1:0', target: `127.0.0.1:${appPort}` }],
      },
      env,
    );
    port = sidecar.listenerAddress('app').port;
  });

  it('lets a client with a Vault-issued certificate reach the app and names it', async () => {
    const client = await issueFromVault(vault, 'caller.test', ['spiffe://test/ns/default/sa/caller']);
    const res = await httpsRequest(port, { ...client, path: '/orders?id=7' });
    expect(res.status).toBe(200);
    const echo = JSON.parse(res.body);
    expect(echo.path).toBe('/orders?id=7');
    expect(echo.caller).toContain('URI=spiffe://test/ns/default/sa/caller');
    expect(echo.caller).toContain('Subject="CN=caller.test"');
  });

  it('refuses a client without a certificate at the handshake', async () => {
    await expect(httpsRequest(port, { ca: vault.caPem })).rejects.toThrow(/certificate required|alert|socket hang up|ECONNRESET/i);
  });

  it('refuses a client whose certificate comes from another CA', async () => {
    const otherCa = await DevCertificateAuthority.create('some other CA');
    const stranger = await otherCa.issue({ commonName: 'caller.test', ttlSeconds: 600 });
    await expect(httpsRequest(port, { cert: stranger.certPem, key: stranger.keyPem, ca: vault.caPem })).rejects.toThrow(
      /unknown ca|alert|socket hang up|ECONNRESET/i,
    );
    const samples = parsePrometheus(await sidecar.metrics.text());
    expect(sampleValue(samples, 'sidecar_tls_handshake_failures_total', { listener: 'app', reason: 'unknown_ca' })).toBe(1);
  });

  it('replaces an x-forwarded-client-cert header the client tried to send', async () => {
    const client = await issueFromVault(vault, 'honest.test');
    const res = await httpsRequest(port, {
      ...client,
      headers: { 'x-forwarded-client-cert': 'URI=spiffe://test/ns/default/sa/admin' },
    });
    const echo = JSON.parse(res.body);
    expect(echo.caller).not.toContain('sa/admin');
    expect(echo.caller).toContain('Subject="CN=honest.test"');
  });
});

describe('two sidecars chained', () => {
  it('carries a request app A → outbound of A → inbound of B → app B', async () => {
    const b = await startSidecar(
      {
        vault: vaultSection(vault),
        identity: serviceIdentity('orders'),
        inbound: [{ name: 'orders', listen: '127.0.0.1:0', target: `127.0.0.1:${appPort}` }],
      },
      env,
    );
    const a = await startSidecar(
      {
        vault: vaultSection(vault),
        identity: serviceIdentity('checkout'),
        outbound: [
          {
            name: 'orders',
            listen: '127.0.0.1:0',
            target: `127.0.0.1:${b.listenerAddress('orders').port}`,
            serverName: 'orders.test',
          },
        ],
      },
      env,
    );
    const res = await fetch(`http://127.0.0.1:${a.listenerAddress('orders').port}/orders/42`, {
      method: 'POST',
      body: 'x'.repeat(100_000),
    });
    expect(res.status).toBe(200);
    const echo = JSON.parse(await res.text());
    expect(echo).toMatchObject({ method: 'POST', path: '/orders/42', bodyBytes: 100_000 });
    // App B learns that the caller is A, from A's Vault-issued certificate.
    expect(echo.caller).toContain('URI=spiffe://test/ns/default/sa/checkout');
  });

  it('answers 502 with a code when the upstream presents a certificate for another name', async () => {
    const b = await startSidecar(
      {
        vault: vaultSection(vault),
        identity: serviceIdentity('payments'),
        inbound: [{ name: 'payments', listen: '127.0.0.1:0', target: `127.0.0.1:${appPort}` }],
      },
      env,
    );
    const a = await startSidecar(
      {
        vault: vaultSection(vault),
        identity: serviceIdentity('shop'),
        outbound: [
          {
            name: 'payments',
            listen: '127.0.0.1:0',
            target: `127.0.0.1:${b.listenerAddress('payments').port}`,
            serverName: 'billing.test',
          },
        ],
      },
      env,
    );
    const res = await fetch(`http://127.0.0.1:${a.listenerAddress('payments').port}/`);
    expect(res.status).toBe(502);
    expect(res.headers.get('x-sidecar-error')).toBe('SIDECAR_UPSTREAM_HANDSHAKE_FAILED');
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('SIDECAR_UPSTREAM_HANDSHAKE_FAILED');
    expect(body.error.message).toContain('billing.test');
  });
});

describe('AppRole auth', () => {
  it('logs in with a role id and a secret id from files and gets a certificate', async () => {
    const secret = await vaultApi<{ data: { secret_id: string } }>(vault, 'POST', `auth/${vault.approleMount}/role/sidecar/secret-id`);
    const dir = mkdtempSync(path.join(tmpdir(), 'sidecar-approle-'));
    writeFileSync(path.join(dir, 'role-id'), `${vault.approleRoleId}\n`);
    writeFileSync(path.join(dir, 'secret-id'), secret.data.secret_id, { mode: 0o600 });
    const sidecar = await startSidecar(
      {
        vault: {
          ...vaultSection(vault),
          auth: {
            method: 'approle',
            mount: vault.approleMount,
            roleIdFile: path.join(dir, 'role-id'),
            secretIdFile: path.join(dir, 'secret-id'),
          },
        },
        identity: serviceIdentity('approle'),
      },
      {},
    );
    expect(sidecar.store.current()?.info.subject).toContain('CN=approle.test');
  });
});

describe('authorization', () => {
  async function authorizedSidecar(dryRun: boolean) {
    return startSidecar(
      {
        vault: vaultSection(vault),
        identity: serviceIdentity(dryRun ? 'authz-dry' : 'authz'),
        inbound: [
          {
            name: 'api',
            listen: '127.0.0.1:0',
            target: `127.0.0.1:${appPort}`,
            authorization: { dryRun, allow: [{ spiffe: 'spiffe://test/ns/*/sa/checkout', methods: ['GET'], paths: ['/api/'] }] },
          },
        ],
      },
      env,
    );
  }

  it('lets an allowed SPIFFE ID through and answers others with a JSON 403 and a code', async () => {
    const sidecar = await authorizedSidecar(false);
    const port = sidecar.listenerAddress('api').port;
    const checkout = await issueFromVault(vault, 'checkout.test', ['spiffe://test/ns/shop/sa/checkout']);
    const cart = await issueFromVault(vault, 'cart.test', ['spiffe://test/ns/shop/sa/cart']);
    expect((await httpsRequest(port, { ...checkout, path: '/api/orders' })).status).toBe(200);

    const denied = await httpsRequest(port, { ...cart, path: '/api/orders' });
    expect(denied.status).toBe(403);
    expect(denied.headers['x-sidecar-error']).toBe('SIDECAR_AUTHZ_DENIED');
    expect(JSON.parse(denied.body)).toEqual({
      error: {
        code: 'SIDECAR_AUTHZ_DENIED',
        message: 'spiffe://test/ns/shop/sa/cart may not call GET /api/orders on api: no allow rule matches GET /api/orders',
      },
    });
    // The allowed caller, on a path its rule does not cover (dot segments resolved first).
    expect((await httpsRequest(port, { ...checkout, path: '/api/../admin' })).status).toBe(403);
    const samples = parsePrometheus(await sidecar.metrics.text());
    expect(sampleValue(samples, 'sidecar_authz_denials_total', { listener: 'api' })).toBe(2);
  });

  it('in dry-run mode lets a would-be denial through', async () => {
    const sidecar = await authorizedSidecar(true);
    const cart = await issueFromVault(vault, 'cart.test', ['spiffe://test/ns/shop/sa/cart']);
    expect((await httpsRequest(sidecar.listenerAddress('api').port, { ...cart, path: '/api/orders' })).status).toBe(200);
    const samples = parsePrometheus(await sidecar.metrics.text());
    expect(sampleValue(samples, 'sidecar_authz_denials_total', { listener: 'api' })).toBeUndefined();
  });
});

describe('telling the app who called', () => {
  it('sends RFC 9440 Client-Cert instead of XFCC when asked, sets X-Forwarded-*, rewrites Host, and strips what the client sent', async () => {
    const sidecar = await startSidecar(
      {
        vault: vaultSection(vault),
        identity: serviceIdentity('headers'),
        inbound: [
          {
            name: 'app',
            listen: '127.0.0.1:0',
            target: `127.0.0.1:${appPort}`,
            forwardClientCert: 'rfc9440',
            rewriteHost: 'orders.internal',
          },
        ],
      },
      env,
    );
    const client = await issueFromVault(vault, 'caller.test');
    const res = await httpsRequest(sidecar.listenerAddress('app').port, {
      ...client,
      headers: { 'client-cert': ':Zm9yZ2Vk:', 'x-forwarded-client-cert': 'URI=spiffe://forged' },
    });
    const echo = JSON.parse(res.body);
    const der = new X509Certificate(client.cert).raw.toString('base64');
    expect(echo.clientCert).toBe(`:${der}:`);
    expect(echo.caller).toBeNull();
    expect(echo.host).toBe('orders.internal');
    expect(echo.forwardedFor).toBe('127.0.0.1');
    expect(echo.forwardedProto).toBe('https');
  });
});

describe('outbound pooling', () => {
  it('serves 100 sequential plaintext connections over far fewer upstream mTLS handshakes', async () => {
    const serving = await issueFromVault(vault, 'pooled.test');
    let handshakes = 0;
    const upstream = https.createServer(
      { cert: serving.cert, key: serving.key, ca: vault.caPem, requestCert: true, rejectUnauthorized: true },
      (_req, res) => res.end('ok'),
    );
    const clientSerials: string[] = [];
    upstream.on('secureConnection', (socket: TLSSocket) => {
      handshakes++;
      clientSerials.push(socket.getPeerCertificate().serialNumber);
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    try {
      const sidecar = await startSidecar(
        {
          vault: vaultSection(vault),
          identity: serviceIdentity('pool-client'),
          outbound: [
            {
              name: 'pooled',
              listen: '127.0.0.1:0',
              target: `127.0.0.1:${(upstream.address() as { port: number }).port}`,
              serverName: 'pooled.test',
            },
          ],
        },
        env,
      );
      const port = sidecar.listenerAddress('pooled').port;
      for (let i = 0; i < 100; i++) {
        // A new plaintext connection each time, closed after the response.
        const res = await fetch(`http://127.0.0.1:${port}/`, { headers: { connection: 'close' } });
        expect(await res.text()).toBe('ok');
      }
      expect(handshakes).toBeLessThanOrEqual(5);

      // After a rotation the next request dials anew (no resumed session of the old identity) and presents the new certificate.
      const before = sidecar.store.current()?.info.serial;
      sidecar.renewer.renewNow();
      await waitFor(() => sidecar.store.current()?.info.serial !== before, 10_000, 'the rotation');
      expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe('ok');
      const newSerial = sidecar.store.current()?.info.serial.replace(/:/g, '').toUpperCase();
      expect(clientSerials.at(-1)?.toUpperCase()).toBe(newSerial);
      expect(new Set(clientSerials.map((s) => s.toUpperCase())).size).toBe(2);
    } finally {
      upstream.closeAllConnections();
      upstream.close();
    }
  });
});
