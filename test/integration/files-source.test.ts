/**
 * The `files` source, as a team with its own openssl CA uses it: PEM files reloaded when they
 * change (through verify-before-publish), and a PKCS#12 bundle made by `openssl pkcs12 -export`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEchoApp } from '../../src/demo/echo-app.js';
import { DevCertificateAuthority } from '../../src/identity/dev-ca.js';
import { waitFor } from '../support/cli.js';
import { parsePrometheus, sampleValue } from '../support/prometheus.js';
import { httpsRequest, startSidecar, stopAllSidecars } from '../support/sidecars.js';

let app: http.Server;
let appPort: number;
let ca: DevCertificateAuthority;
const dir = mkdtempSync(path.join(tmpdir(), 'sidecar-files-'));

beforeAll(async () => {
  ({
    server: app,
    address: { port: appPort },
  } = await startEchoApp());
  ca = await DevCertificateAuthority.create('team openssl CA');
});

afterAll(async () => {
  await stopAllSidecars();
  app.closeAllConnections();
  app.close();
});

/** Writes atomically, as a careful deploy script (or the kubelet's symlink swap) would. */
function writeAtomically(file: string, content: string): void {
  writeFileSync(`${file}.tmp`, content);
  renameSync(`${file}.tmp`, file);
}

const serverIdentity = () => ca.issue({ commonName: 'files.test', dnsNames: ['localhost'], ttlSeconds: 3600 });

describe('PEM files', () => {
  it('serves them, reloads a new certificate when the files change, and refuses a broken one', async () => {
    const files = { cert: path.join(dir, 'tls.crt'), key: path.join(dir, 'tls.key'), ca: path.join(dir, 'ca.crt') };
    const first = await serverIdentity();
    writeFileSync(files.cert, first.certPem);
    writeFileSync(files.key, first.keyPem);
    writeFileSync(files.ca, ca.certPem);
    const sidecar = await startSidecar({
      identity: { source: 'files', files: { ...files, pollInterval: '200ms' }, dnsNames: ['localhost'] },
      inbound: [{ name: 'app', listen: '127.0.0.1:0', target: `127.0.0.1:${appPort}` }],
    });
    const port = sidecar.listenerAddress('app').port;
    const client = await ca.issue({ commonName: 'client.test', ttlSeconds: 3600 });
    const request = () => httpsRequest(port, { cert: client.certPem, key: client.keyPem, ca: ca.certPem });
    const firstSerial = (await request()).serverSerial;

    // A new certificate and key on disk: picked up without a restart.
    const second = await serverIdentity();
    writeAtomically(files.key, second.keyPem);
    writeAtomically(files.cert, second.certPem);
    await waitFor(async () => (await request()).serverSerial !== firstSerial, 10_000, 'the reloaded certificate');
    const secondSerial = (await request()).serverSerial;

    // A certificate whose key does not match: refused, the previous one keeps serving.
    const third = await serverIdentity();
    writeAtomically(files.cert, third.certPem);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await request()).serverSerial).toBe(secondSerial);
    expect(sidecar.store.current()?.info.serial.replace(/:/g, '').toUpperCase()).toBe(secondSerial.toUpperCase());

    // Metrics that do not apply without Vault are absent, not 0 (a token-TTL alert would fire on 0).
    const samples = parsePrometheus(await sidecar.metrics.text());
    expect(samples.filter((s) => /^sidecar_(vault_token_ttl|crl_age)_seconds$/.test(s.name))).toEqual([]);
    expect(sampleValue(samples, 'sidecar_cert_expiry_timestamp_seconds', { source: 'files' })).toBeGreaterThan(Date.now() / 1000);
  });
});

describe('PKCS#12', () => {
  it('loads a bundle made by openssl pkcs12 -export with a password', async () => {
    const identity = await serverIdentity();
    writeFileSync(path.join(dir, 'p12.crt'), identity.certPem);
    writeFileSync(path.join(dir, 'p12.key'), identity.keyPem);
    writeFileSync(path.join(dir, 'p12-ca.crt'), ca.certPem);
    writeFileSync(path.join(dir, 'p12-password'), 's3cret\n');
    execFileSync('openssl', [
      'pkcs12',
      '-export',
      '-in',
      path.join(dir, 'p12.crt'),
      '-inkey',
      path.join(dir, 'p12.key'),
      '-certfile',
      path.join(dir, 'p12-ca.crt'),
      '-passout',
      'pass:s3cret',
      '-out',
      path.join(dir, 'identity.p12'),
    ]);
    const sidecar = await startSidecar({
      identity: {
        source: 'files',
        files: { pkcs12: path.join(dir, 'identity.p12'), passwordFile: path.join(dir, 'p12-password'), ca: path.join(dir, 'p12-ca.crt') },
      },
      inbound: [{ name: 'app', listen: '127.0.0.1:0', target: `127.0.0.1:${appPort}` }],
    });
    const client = await ca.issue({ commonName: 'client.test', ttlSeconds: 3600 });
    const res = await httpsRequest(sidecar.listenerAddress('app').port, { cert: client.certPem, key: client.keyPem, ca: ca.certPem });
    expect(res.status).toBe(200);
    expect(sidecar.store.current()?.info.subject).toContain('CN=files.test');
  });

  it('says which file and what to check when the password is wrong', async () => {
    writeFileSync(path.join(dir, 'wrong-password'), 'nope');
    const { FileCertificateSource } = await import('../../src/identity/file-source.js');
    const source = new FileCertificateSource({
      pkcs12: path.join(dir, 'identity.p12'),
      passwordFile: path.join(dir, 'wrong-password'),
      pollInterval: 10,
    });
    await expect(source.issue()).rejects.toMatchObject({
      code: 'SIDECAR_FILES_UNREADABLE',
      message: expect.stringMatching(
        /identity\.files\.pkcs12: cannot open .*identity\.p12 .*check the file and identity\.files\.passwordFile/,
      ),
    });
  });
});
