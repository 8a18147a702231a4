/** Starts and stops `bao|vault server -dev` processes: the shared one, and private ones tests may kill. */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './ports.js';

export interface DevServer {
  readonly address: string;
  /** With `tls`: the CA that signed the server's certificate (what VAULT_CACERT points at). */
  readonly caFile?: string;
  readonly port: number;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

function healthStatus(address: string, ca?: string): Promise<number> {
  return new Promise((resolve) => {
    const req = (address.startsWith('https:') ? https : http).get(`${address}/v1/sys/health`, { ca }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
  });
}

async function waitForHealth(address: string, child: ChildProcess, output: () => string, ca?: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the dev server exited with ${child.exitCode}:\n${output()}`);
    const caPem = ca && existsSync(ca) ? readFileSync(ca, 'utf8') : undefined;
    if ((ca === undefined || caPem) && (await healthStatus(address, caPem)) === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the dev server did not become healthy within 30s:\n${output()}`);
}

/**
 * A dev server with root token `root` on `port` (a free one when omitted) of `host` (127.0.0.1 when
 * omitted). Its state lives in memory only.
 */
export async function startDevServer(bin: string, port?: number, options: { tls?: boolean; host?: string } = {}): Promise<DevServer> {
  const listenPort = port ?? (await freePort());
  const host = options.host ?? '127.0.0.1';
  const home = mkdtempSync(path.join(tmpdir(), 'sidecar-openbao-'));
  const address = `${options.tls ? 'https' : 'http'}://${host}:${listenPort}`;
  const caFile = options.tls ? path.join(home, 'vault-ca.pem') : undefined;
  const tlsArgs = options.tls ? ['-dev-tls', `-dev-tls-cert-dir=${home}`] : [];
  let log = '';
  const child = spawn(
    bin,
    ['server', '-dev', '-dev-root-token-id=root', `-dev-listen-address=${host}:${listenPort}`, '-dev-no-store-token', ...tlsArgs],
    // A private HOME keeps the dev server from touching the developer's ~/.vault-token.
    { env: { PATH: process.env.PATH, HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const collect = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    rmSync(home, { recursive: true, force: true });
  };
  try {
    await waitForHealth(address, child, () => log, caFile);
  } catch (err) {
    await stop();
    throw err;
  }
  return { address, port: listenPort, child, stop, ...(caFile ? { caFile } : {}) };
}
