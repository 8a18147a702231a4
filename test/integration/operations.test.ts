import type http from 'node:http';
import tls from 'node:tls';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import { startEchoApp } from '../../src/demo/echo-app.js';
import { Sidecar } from '../../src/sidecar.js';
import { waitFor } from '../support/cli.js';
import { approleAuth } from '../support/fixtures.js';
import { capturingLogger } from '../support/logs.js';
import { freePort } from '../support/ports.js';
import { parsePrometheus, sampleValue } from '../support/prometheus.js';
import { httpGet, httpsRequest, issueFromVault, startSidecar, stopAllSidecars, vaultSection } from '../support/sidecars.js';

const vault = inject('vault');
let app: http.Server;
let appPort: number;

beforeAll(async () => {
  ({
    server: app,
    address: { port: appPort },
  } = await startEchoApp());
});

afterAll(async () => {
  await stopAllSidecars();
  app.closeAllConnections();
  app.close();
});

/** A handshake without a client certificate; resolves once the server has refused it. */
function handshakeWithoutCertificate(port: number, ca: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
    // TLS 1.3 finishes the client side first; the refusal arrives as an alert on the first read.
    socket.on('secureConnect', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  });
}

describe('/metrics', () => {
  it('reports certificate, renewal, Vault, request and handshake series with the right values', async () => {
    const deadPort = await freePort();
    const sidecar = await startSidecar({
      vault: { ...vaultSection(vault), auth: await approleAuth(vault) },
      identity: { commonName: 'metrics.test', dnsNames: ['localhost'], ttl: '10m' },
      inbound: [
        { name: 'app', listen: '127.0.0.1:0', target: `127.0.0.1:${appPort}` },
        { name: 'dead', listen: '127.0.0.1:0', target: `127.0.0.1:${deadPort}` },
      ],
    });
    const admin = sidecar.admin.address()?.port ?? 0;
    const port = sidecar.listenerAddress('app').port;
    const client = await issueFromVault(vault, 'scraper.test');

    for (let i = 0; i < 3; i++) expect((await httpsRequest(port, client)).status).toBe(200);
    expect((await httpsRequest(sidecar.listenerAddress('dead').port, client)).status).toBe(502);
    await handshakeWithoutCertificate(port, vault.caPem);
    await handshakeWithoutCertificate(port, vault.caPem);

    const before = sidecar.store.current()?.info.serial;
    const rotate = await fetch(`http://127.0.0.1:${admin}/rotate`, { method: 'POST' });
    expect(rotate.status).toBe(202);
    await waitFor(() => sidecar.store.current()?.info.serial !== before, 10_000, 'the rotation');

    const served = await httpsRequest(port, client);
    const samples = parsePrometheus((await httpGet(admin, '/metrics')).body);
    const notAfter = sidecar.store.current()?.info.notAfter.getTime() ?? 0;
    expect(served.serverSerial.toUpperCase()).toBe(sidecar.store.current()?.info.serial.replace(/:/g, '').toUpperCase());
    expect(sampleValue(samples, 'sidecar_cert_expiry_timestamp_seconds')).toBe(notAfter / 1000);
    expect(sampleValue(samples, 'sidecar_cert_next_renewal_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000);
    expect(sampleValue(samples, 'sidecar_cert_renewals_total', { result: 'success' })).toBe(2);
    expect(sampleValue(samples, 'sidecar_cert_renewals_total', { result: 'failure' })).toBeUndefined();
    expect(sampleValue(samples, 'sidecar_vault_request_duration_seconds_count', { operation: 'issue', status: '200' })).toBe(2);
    expect(sampleValue(samples, 'sidecar_vault_request_duration_seconds_count', { operation: 'login', status: '200' })).toBe(1);
    // The documented policy lets the sidecar read the trust bundle and CRL.
    expect(sampleValue(samples, 'sidecar_vault_request_duration_seconds_count', { operation: 'list-issuers', status: '200' })).toBe(1);
    expect(sampleValue(samples, 'sidecar_vault_request_duration_seconds_count', { operation: 'read-crl', status: '200' })).toBe(1);
    expect(sampleValue(samples, 'sidecar_crl_age_seconds')).toBeGreaterThanOrEqual(0);
    // The AppRole token has a 1 h TTL.
    const ttl = sampleValue(samples, 'sidecar_vault_token_ttl_seconds') ?? 0;
    expect(ttl).toBeGreaterThan(3500);
    expect(ttl).toBeLessThanOrEqual(3600);
    expect(sampleValue(samples, 'sidecar_requests_total', { listener: 'app', status: '200' })).toBe(4);
    expect(sampleValue(samples, 'sidecar_requests_total', { listener: 'dead', status: '502' })).toBe(1);
    expect(sampleValue(samples, 'sidecar_request_duration_seconds_count', { listener: 'app' })).toBe(4);
    expect(sampleValue(samples, 'sidecar_tls_handshake_failures_total', { listener: 'app', reason: 'no_certificate' })).toBe(2);
    expect(sampleValue(samples, 'sidecar_bytes_received_total', { listener: 'app', direction: 'inbound' })).toBeGreaterThan(0);
    expect(sampleValue(samples, 'sidecar_connections_active', { listener: 'app' })).toBeGreaterThanOrEqual(0);
    expect(sampleValue(samples, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    // Nothing secret in the exposition.
    expect(samples.some((s) => /BEGIN|token/i.test(JSON.stringify(s.labels)))).toBe(false);
  });
});

describe('audit events', () => {
  let sidecar: Sidecar;
  let lines: Record<string, unknown>[];

  beforeAll(async () => {
    const capture = capturingLogger();
    lines = capture.lines;
    const config = buildConfig(
      {
        vault: vaultSection(vault),
        identity: { commonName: 'audited.test', dnsNames: ['localhost'], ttl: '10m' },
        inbound: [{ name: 'guarded', listen: '127.0.0.1:0', target: `127.0.0.1:${appPort}` }],
        admin: { listen: '127.0.0.1:0' },
      },
      { VAULT_TOKEN: vault.rootToken },
    );
    sidecar = await Sidecar.create(config, pino({ level: 'silent' }), { auditLogger: capture.logger });
    await sidecar.start();
  });

  afterAll(() => sidecar.stop(500));

  it('logs one event with the reason for a rejected handshake', async () => {
    await handshakeWithoutCertificate(sidecar.listenerAddress('guarded').port, vault.caPem);
    await waitFor(() => lines.length > 0, 2000, 'the audit line');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      audit: true,
      event: 'tls_handshake_rejected',
      listener: 'guarded',
      remoteAddress: '127.0.0.1',
      reason: 'no_certificate',
      msg: 'rejected a TLS handshake',
    });
  });

  it('keeps 1,000 rejected handshakes in a burst to a bounded number of lines while counting all', { timeout: 60_000 }, async () => {
    const port = sidecar.listenerAddress('guarded').port;
    const already = lines.length;
    for (let batch = 0; batch < 20; batch++) {
      await Promise.all(Array.from({ length: 50 }, () => handshakeWithoutCertificate(port, vault.caPem)));
    }
    // The server side of a refused handshake can trail the client's on a loaded machine: wait until
    // all 1,000 are counted before flushing the audit summary.
    const counted = async () =>
      sampleValue(parsePrometheus(await sidecar.metrics.text()), 'sidecar_tls_handshake_failures_total', {
        listener: 'guarded',
        reason: 'no_certificate',
      });
    await waitFor(async () => (await counted()) === 1001, 10_000, '1001 no_certificate refusals counted');
    sidecar.audit.flush();
    const burstLines = lines.slice(already);
    // The bucket allows a burst of 20 and 2/s after it, plus one summary line.
    expect(burstLines.length).toBeLessThan(80);
    expect(burstLines.length).toBeGreaterThan(1);
    const logged = burstLines.filter((l) => l.event === 'tls_handshake_rejected' && !('suppressed' in l)).length;
    const summarized = burstLines.reduce((n, l) => n + (typeof l.suppressed === 'number' ? l.suppressed : 0), 0);
    const suppressedBefore = burstLines.reduce((n, l) => n + (typeof l.suppressedBefore === 'number' ? l.suppressedBefore : 0), 0);
    expect(logged + suppressedBefore + summarized).toBe(1000);
    const samples = parsePrometheus(await sidecar.metrics.text());
    expect(sampleValue(samples, 'sidecar_tls_handshake_failures_total', { listener: 'guarded', reason: 'no_certificate' })).toBe(1001);
  });
});

describe('/readyz', () => {
  it('is false before the first certificate, names why, and the start-up timeout says what to check', async () => {
    const deadVault = await freePort();
    const config = buildConfig(
      {
        vault: { address: `http://127.0.0.1:${deadVault}`, pki: { role: 'web' } },
        identity: { commonName: 'early.test' },
        admin: { listen: '127.0.0.1:0' },
        startupTimeout: '1s',
      },
      { VAULT_TOKEN: 'x' },
    );
    const { logger, lines } = capturingLogger();
    const sidecar = await Sidecar.create(config, logger);
    const starting = sidecar.start();
    await waitFor(() => sidecar.admin.address() !== undefined, 2000, 'the admin server');
    const ready = await httpGet(sidecar.admin.address()?.port ?? 0, '/readyz');
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body).reasons).toContain('no valid certificate');
    await waitFor(() => lines.some((l) => l.code === 'SIDECAR_STARTUP_TIMEOUT'), 5000, 'the start-up timeout line');
    const line = lines.find((l) => l.code === 'SIDECAR_STARTUP_TIMEOUT') as { msg: string };
    expect(line.msg).toContain(`check the Vault address (http://127.0.0.1:${deadVault}), the token auth role`);
    await sidecar.stop(0);
    await starting;
  });
});
