/**
 * The sidecar under attack: the built CLI in its own process (so "still alive" means something),
 * openssl-made certificates, and apps that record exactly what reached them. Each scenario file
 * starts one, attacks it, and asserts what the attacker got, what the app received, the audit line
 * and the metric, that a good client is still served, and that the process is alive.
 */
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, expect } from 'vitest';
import { type Spawned, spawnCli, waitFor } from '../support/cli.js';
import { type Pem, TestPki } from '../support/pki.js';

/** What reached the app, as bytes on the wire and as parsed requests. */
export interface RecordingApp {
  readonly port: number;
  /** Every byte the app received, all connections, in order of arrival. */
  raw(): string;
  readonly requests: { method: string; url: string; headers: http.IncomingHttpHeaders; rawHeaders: string[]; body: string }[];
  close(): void;
}

/**
 * An HTTP/1.1 app behind a byte recorder: the recorder accepts, keeps every byte, and pipes to a
 * plain Node server that answers 200 with the path it saw. `delayMs` holds each answer.
 */
export async function startRecordingApp(delayMs = 0): Promise<RecordingApp> {
  const requests: RecordingApp['requests'] = [];
  const app = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(chunks).toString(),
      });
      setTimeout(() => {
        if (res.destroyed) return;
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`app saw ${req.method} ${req.url}`);
      }, delayMs);
    });
    req.on('error', () => undefined);
  });
  app.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body: '' });
    socket.end('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n');
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const appPort = (app.address() as net.AddressInfo).port;
  const chunks: Buffer[] = [];
  const recorder = net.createServer((socket) => {
    const upstream = net.connect(appPort, '127.0.0.1');
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.pipe(upstream).pipe(socket);
    const both = () => {
      socket.destroy();
      upstream.destroy();
    };
    socket.on('error', both);
    upstream.on('error', both);
    socket.on('close', both);
    upstream.on('close', both);
  });
  await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve));
  return {
    port: (recorder.address() as net.AddressInfo).port,
    raw: () => Buffer.concat(chunks).toString('latin1'),
    requests,
    close() {
      recorder.close();
      app.closeAllConnections();
      app.close();
    },
  };
}

/** A cleartext HTTP/2 app (gRPC-shaped): records each stream's headers; answers after `delayMs`. */
export interface RecordingH2App {
  readonly port: number;
  readonly streams: http2.IncomingHttpHeaders[];
  /** Streams open right now, and the most ever open at once. */
  open(): number;
  maxOpen(): number;
  close(): void;
}

export async function startRecordingH2App(delayMs = 0): Promise<RecordingH2App> {
  const streams: http2.IncomingHttpHeaders[] = [];
  let open = 0;
  let maxOpen = 0;
  const app = http2.createServer({ settings: { maxConcurrentStreams: 10_000 } });
  app.on('sessionError', () => undefined);
  app.on('stream', (stream, headers) => {
    streams.push(headers);
    open++;
    maxOpen = Math.max(maxOpen, open);
    stream.on('error', () => undefined);
    stream.on('close', () => {
      open--;
    });
    stream.resume();
    const answer = () => {
      if (stream.destroyed || stream.closed) return;
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => {
        if (!stream.closed) stream.sendTrailers({ 'grpc-status': '0' });
      });
      stream.end(`app saw ${String(headers[':path'])}`);
    };
    if (delayMs > 0) setTimeout(answer, delayMs);
    else stream.on('end', answer);
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  return {
    port: (app.address() as net.AddressInfo).port,
    streams,
    open: () => open,
    maxOpen: () => maxOpen,
    close: () => app.close(),
  };
}

export interface SidecarUnderAttack {
  readonly run: Spawned;
  readonly pki: TestPki;
  /** A client certificate the sidecar trusts (SPIFFE ID spiffe://test/ns/default/sa/good). */
  readonly good: Pem;
  readonly adminPort: number;
  port(listener: string): number;
  /** JSON log lines, optionally only those with `event`. */
  logs(event?: string): Record<string, unknown>[];
  /** A Prometheus sample's value (summed over series matching `labels`), or undefined when absent. */
  metric(name: string, labels?: Record<string, string>): Promise<number | undefined>;
  /** Throws unless the process runs, /healthz answers, and a good client gets a 200 from `listener`. */
  assertAlive(listener?: string): Promise<void>;
}

const started: Spawned[] = [];
const appsToClose: { close(): void }[] = [];
afterAll(() => {
  for (const run of started.splice(0)) run.child.kill('SIGKILL');
  for (const app of appsToClose.splice(0)) app.close();
});

/**
 * Starts the built CLI with a files identity from a fresh openssl CA and the given listeners
 * (listen addresses default to 127.0.0.1:0). Ports are read from the "listener ready" log lines.
 */
export async function startSidecarUnderAttack(config: {
  inbound?: Record<string, unknown>[];
  outbound?: Record<string, unknown>[];
  extra?: Record<string, unknown>;
  pki?: TestPki;
  rsaServer?: boolean;
  /** Extra environment for the process (e.g. INSPECT_ENV from heap-probe.ts). */
  env?: Record<string, string>;
}): Promise<SidecarUnderAttack> {
  const pki = config.pki ?? TestPki.create();
  const server = pki.leaf('server', {
    cn: 'app.test',
    dns: ['localhost', 'app.test'],
    uris: ['spiffe://test/ns/default/sa/app'],
    rsa: config.rsaServer,
  });
  const good = pki.leaf('good-client', { cn: 'good.test', uris: ['spiffe://test/ns/default/sa/good'] });
  const withListen = (l: Record<string, unknown>) => ({ listen: '127.0.0.1:0', ...l });
  const file = path.join(pki.dir, `config-${started.length}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      identity: { source: 'files', files: { cert: server.certFile, key: server.keyFile, ca: pki.ca.certFile } },
      inbound: (config.inbound ?? []).map(withListen),
      outbound: (config.outbound ?? []).map(withListen),
      admin: { listen: '127.0.0.1:0' },
      log: { level: 'info', format: 'json' },
      ...config.extra,
    }),
  );
  const run = spawnCli(['run', '--config', file], config.env);
  started.push(run);
  const logs = (event?: string) =>
    run
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => event === undefined || l.event === event);
  const names = [...(config.inbound ?? []), ...(config.outbound ?? [])].map((l) => String(l.name));
  await waitFor(
    () => {
      if (run.child.exitCode !== null) throw new Error(`the sidecar exited at start: ${run.stderr()}`);
      return logs().some((l) => l.msg === 'sidecar ready');
    },
    15_000,
    () => `the sidecar to start (stdout: ${run.stdout().slice(-3000)} stderr: ${run.stderr()})`,
  );
  const portOf = (line: Record<string, unknown> | undefined) =>
    Number(
      String(line?.address ?? '')
        .split(':')
        .pop(),
    );
  const adminPort = portOf(logs().find((l) => l.msg === 'admin server ready'));
  const ports = new Map(
    names.map((name) => [name, portOf(logs().find((l) => l.listener === name && String(l.msg).endsWith('listener ready')))]),
  );
  const metric = async (name: string, labels: Record<string, string> = {}) => {
    const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    let total: number | undefined;
    for (const line of text.split('\n')) {
      if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
      if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
      total = (total ?? 0) + Number(line.split(' ').pop());
    }
    return total;
  };
  const attacked: SidecarUnderAttack = {
    run,
    pki,
    good,
    adminPort,
    port(listener) {
      const port = ports.get(listener);
      if (!port) throw new Error(`no port for listener ${listener}`);
      return port;
    },
    logs,
    metric,
    async assertAlive(listener) {
      expect(run.child.exitCode, `the sidecar exited: ${run.stderr()}`).toBeNull();
      expect((await fetch(`http://127.0.0.1:${adminPort}/healthz`)).status).toBe(200);
      if (!listener) return;
      const mode = (config.inbound ?? []).find((l) => l.name === listener)?.mode;
      const status = mode === 'h2' ? await h2Get(attacked, listener, '/healthcheck') : await goodGet(attacked, listener, '/healthcheck');
      expect(status.status).toBe(200);
    },
  };
  return attacked;
}

/**
 * The usual target: a recording app behind one inbound http listener named `web`, with the
 * listener settings given (limits, authorization, …). Stops the app after the file.
 */
export async function startAppBehindSidecar(
  listener: Record<string, unknown> = {},
  options: { rsaServer?: boolean } = {},
): Promise<{ app: RecordingApp; sidecar: SidecarUnderAttack }> {
  const app = await startRecordingApp();
  appsToClose.push(app);
  const sidecar = await startSidecarUnderAttack({ inbound: [{ name: 'web', target: `127.0.0.1:${app.port}`, ...listener }], ...options });
  return { app, sidecar };
}

/**
 * The usual pair of targets: a recording http app behind listener `web` and a recording h2 app
 * behind listener `grpc` (mode h2) of one sidecar, both with the listener settings given. Stops
 * both apps after the file.
 */
export async function startHttpAndH2BehindSidecar(
  listener: Record<string, unknown> = {},
): Promise<{ app: RecordingApp; h2app: RecordingH2App; sidecar: SidecarUnderAttack }> {
  const app = await startRecordingApp();
  const h2app = await startRecordingH2App();
  appsToClose.push(app, h2app);
  const sidecar = await startSidecarUnderAttack({
    inbound: [
      { name: 'web', target: `127.0.0.1:${app.port}`, ...listener },
      { name: 'grpc', mode: 'h2', target: `127.0.0.1:${h2app.port}`, ...listener },
    ],
  });
  return { app, h2app, sidecar };
}

/** A GET from the trusted client over a new TLS connection. */
export function goodGet(
  target: SidecarUnderAttack,
  listener: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: target.port(listener),
        path,
        headers,
        cert: target.good.cert,
        key: target.good.key,
        ca: target.pki.ca.cert,
        servername: 'localhost',
        agent: false,
      },
      (res) => {
        let body = '';
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A TLS socket from the trusted client (or `pem`), for writing raw HTTP. */
export async function tlsConnect(
  target: SidecarUnderAttack,
  listener: string,
  pem: Pem = target.good,
  alpn?: string[],
  /** Connect here instead of to the listener (a tcpRelay in front of it). */
  viaPort?: number,
): Promise<tls.TLSSocket> {
  const socket = tls.connect({
    host: '127.0.0.1',
    port: viaPort ?? target.port(listener),
    cert: pem.cert,
    key: pem.key,
    ca: target.pki.ca.cert,
    servername: 'localhost',
    ...(alpn ? { ALPNProtocols: alpn } : {}),
  });
  await once(socket, 'secureConnect');
  return socket;
}

/**
 * A plain TCP relay in front of `port`, so a test can reset the TCP connection under a TLS session:
 * `resetAll()` sends RST to the far side (resetting a socket that TLS wraps is not possible in Node).
 */
export async function tcpRelay(port: number): Promise<{ port: number; resetAll(): void; close(): void }> {
  const upstreams = new Set<net.Socket>();
  const relay = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    upstreams.add(upstream);
    upstream.on('close', () => upstreams.delete(upstream));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  return {
    port: (relay.address() as net.AddressInfo).port,
    resetAll() {
      for (const upstream of upstreams) upstream.resetAndDestroy();
    },
    close: () => relay.close(),
  };
}

/** Writes raw bytes and collects the answer until the server closes or `waitMs` passes. */
export async function rawExchange(socket: net.Socket, bytes: string | Buffer, waitMs = 2000): Promise<string> {
  let text = '';
  socket.on('data', (c: Buffer) => {
    text += c.toString('latin1');
  });
  socket.on('error', () => undefined);
  socket.write(bytes);
  await Promise.race([once(socket, 'close'), new Promise((r) => setTimeout(r, waitMs))]);
  socket.destroy();
  return text;
}

/** One h2 GET from the trusted client on a fresh session. */
export async function h2Get(target: SidecarUnderAttack, listener: string, path: string): Promise<{ status: number; body: string }> {
  const session = http2.connect(`https://127.0.0.1:${target.port(listener)}`, {
    cert: target.good.cert,
    key: target.good.key,
    ca: target.pki.ca.cert,
    servername: 'localhost',
  });
  session.on('error', () => undefined);
  try {
    return await new Promise((resolve, reject) => {
      const req = session.request({ ':path': path, ':method': 'GET' });
      let status = 0;
      let body = '';
      req.on('response', (h) => {
        status = Number(h[':status']);
      });
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => resolve({ status, body }));
      req.on('error', reject);
      req.end();
    });
  } finally {
    session.close();
  }
}
