/**
 * `demo`: the whole sidecar with no Vault. One in-memory dev CA issues the sidecar's certificate
 * and a client certificate; an echo app sits behind the inbound mTLS listener, and an outbound
 * listener dials that inbound listener, so both directions can be tried with curl.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import type http from 'node:http';
import path from 'node:path';
import type { Logger } from 'pino';
import { buildConfig } from '../config/load.js';
import { DevCertificateAuthority, DevCertificateSource } from '../identity/dev-ca.js';
import { Sidecar } from '../sidecar.js';
import { startEchoApp } from './echo-app.js';

export interface DemoOptions {
  readonly dir: string;
  readonly inboundPort: number;
  readonly outboundPort: number;
  readonly adminPort: number;
  readonly logger: Logger;
}

export interface RunningDemo {
  readonly sidecar: Sidecar;
  readonly app: http.Server;
  readonly files: { readonly ca: string; readonly cert: string; readonly key: string };
  readonly commands: { readonly noCert: string; readonly withCert: string; readonly outbound: string };
  stop(graceMs?: number): Promise<void>;
}

/** Quotes a path for a POSIX shell only when it needs it, so the printed commands stay readable. */
function shellQuote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

export async function startDemo(options: DemoOptions): Promise<RunningDemo> {
  const ca = await DevCertificateAuthority.create('vault-mtls-sidecar demo CA');
  const { server: app, address: appAddress } = await startEchoApp();

  const config = buildConfig(
    {
      identity: {
        source: 'dev',
        commonName: 'echo.demo.local',
        dnsNames: ['localhost', 'echo.demo.local'],
        ipSans: ['127.0.0.1'],
        uriSans: ['spiffe://demo.local/ns/default/sa/echo'],
        ttl: '1h',
      },
      inbound: [{ name: 'echo', listen: `127.0.0.1:${options.inboundPort}`, target: `127.0.0.1:${appAddress.port}` }],
      outbound: [
        {
          name: 'to-echo',
          listen: `127.0.0.1:${options.outboundPort}`,
          target: `127.0.0.1:${options.inboundPort}`,
          serverName: 'localhost',
        },
      ],
      admin: { listen: `127.0.0.1:${options.adminPort}` },
    },
    {},
  );
  const sidecar = await Sidecar.create(config, options.logger, { source: new DevCertificateSource(ca) });
  try {
    await sidecar.start();
  } catch (err) {
    await sidecar.stop(0);
    app.close();
    throw err;
  }

  const client = await ca.issue({
    commonName: 'demo-client',
    uriSans: ['spiffe://demo.local/ns/default/sa/curl'],
    ttlSeconds: 24 * 3600,
  });
  await mkdir(options.dir, { recursive: true });
  const files = {
    ca: path.join(options.dir, 'ca.crt'),
    cert: path.join(options.dir, 'client.crt'),
    key: path.join(options.dir, 'client.key'),
  };
  await writeFile(files.ca, ca.certPem);
  await writeFile(files.cert, client.certPem);
  await writeFile(files.key, client.keyPem, { mode: 0o600 });
  await chmod(files.key, 0o600);

  const inbound = sidecar.listenerAddress('echo').port;
  const outbound = sidecar.listenerAddress('to-echo').port;
  const q = (p: string) => shellQuote(p);
  const commands = {
    noCert: `curl --cacert ${q(files.ca)} https://localhost:${inbound}/hello`,
    withCert: `curl --cacert ${q(files.ca)} --cert ${q(files.cert)} --key ${q(files.key)} https://localhost:${inbound}/hello`,
    outbound: `curl http://127.0.0.1:${outbound}/via-outbound`,
  };

  return {
    sidecar,
    app,
    files,
    commands,
    async stop(graceMs = 2000) {
      await sidecar.stop(graceMs);
      app.closeAllConnections();
      await new Promise<void>((resolve) => app.close(() => resolve()));
    },
  };
}
