/** Starting sidecars in-process for integration tests, and the clients that talk to them. */
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { type Logger, pino } from 'pino';
import { buildConfig } from '../../src/config/load.js';
import type { CertificateSource } from '../../src/identity/source.js';
import { Sidecar } from '../../src/sidecar.js';
import { vaultApi } from './vault-api.js';
import type { TestVault } from './vault-setup.js';

/** Quiet by default; TEST_LOG=debug shows the sidecars' logs. */
export const testLogger = pino({ level: process.env.TEST_LOG ?? 'silent' });

const running = new Set<Sidecar>();

export async function startSidecar(
  raw: Record<string, unknown>,
  env: Record<string, string> = {},
  options: { source?: CertificateSource; logger?: Logger } = {},
): Promise<Sidecar> {
  const config = buildConfig({ admin: { listen: '127.0.0.1:0' }, ...raw }, env);
  const sidecar = await Sidecar.create(config, options.logger ?? testLogger, options.source ? { source: options.source } : {});
  running.add(sidecar);
  await sidecar.start();
  return sidecar;
}

export async function stopAllSidecars(): Promise<void> {
  await Promise.all([...running].map((s) => s.stop(500)));
  running.clear();
}

/** A vault section for a sidecar using the test PKI role with the root token. */
export function vaultSection(vault: TestVault): Record<string, unknown> {
  return { address: vault.address, pki: { mount: vault.pkiMount, role: vault.role } };
}

export interface IssuedCertificate {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  readonly serial: string;
}

/** A certificate straight from the test PKI role, as another service would hold it. */
export async function issueFromVault(vault: TestVault, commonName: string, uriSans: string[] = [], ttl = '1h'): Promise<IssuedCertificate> {
  const res = await vaultApi<{ data: { certificate: string; private_key: string; issuing_ca: string; serial_number: string } }>(
    vault,
    'POST',
    `${vault.pkiMount}/issue/${vault.role}`,
    { common_name: commonName, uri_sans: uriSans.join(','), ttl },
  );
  return { cert: res.data.certificate, key: res.data.private_key, ca: res.data.issuing_ca, serial: res.data.serial_number };
}

export interface HttpsResult {
  readonly status: number;
  readonly body: string;
  readonly headers: Record<string, string | string[] | undefined>;
  /** The serial of the certificate the server presented, upper-case hex. */
  readonly serverSerial: string;
  /** The client's local port: equal across requests that shared one keep-alive connection. */
  readonly localPort: number;
}

/**
 * The tests' name check (certificates are checked by the CA; names by their own tests). A keep-alive
 * https.Agent must carry it in its own options: since Node 24 a per-request checkServerIdentity
 * gets a socket of its own, never a pooled one.
 */
export const acceptAnyName = () => undefined;

export function httpsRequest(
  port: number,
  options: {
    cert?: string;
    key?: string;
    ca: string;
    path?: string;
    agent?: https.Agent;
    servername?: string;
    method?: string;
    headers?: Record<string, string>;
  },
): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: options.path ?? '/',
        method: options.method ?? 'GET',
        headers: options.headers,
        servername: options.servername ?? 'localhost',
        cert: options.cert,
        key: options.key,
        ca: options.ca,
        agent: options.agent ?? false,
        checkServerIdentity: acceptAnyName,
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const serverSerial = socket.getPeerCertificate().serialNumber;
        const localPort = socket.localPort ?? 0;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: res.headers, serverSerial, localPort }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

export async function httpGet(port: number, path = '/'): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}
