/**
 * grpc-go through the sidecars (issue 29): a grpc-go client → outbound h2 sidecar → inbound h2
 * sidecar → grpc-go server, and each sidecar alone against a grpc-go TLS peer. The peer is
 * test/peers/grpc (built by scripts/install-grpc-peer.sh before vitest starts): its client reads
 * one JSON command per line and answers one JSON result per line on one ClientConn; its server
 * prints how each waiting call's context ended.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DevCertificateAuthority, DevCertificateSource } from '../../src/identity/dev-ca.js';
import type { Sidecar } from '../../src/sidecar.js';
import { preparedPath } from '../support/prepared.js';
import { startSidecar, stopAllSidecars } from '../support/sidecars.js';

const PEER = preparedPath('grpc-peer');
/** Short, so an idle connection is closed within the test; calls here last far less. */
const IDLE_TIMEOUT = '1s';

interface Result {
  code: string;
  connections: number;
  goaways: number;
  message?: string;
  details?: string[];
  reply?: string;
  replies?: string[];
  header?: Record<string, string[]>;
  trailer?: Record<string, string[]>;
  statuses?: string[];
  state?: string;
}

interface ProbeResult {
  callStatus: string;
  pings: number;
  goaway: boolean;
  goawayCode?: string;
  lastStreamId: number;
  closed: boolean;
  error?: string;
}

const children = new Set<ChildProcessWithoutNullStreams>();

/** Runs the peer; `onLine` gets each JSON line it prints. Its stderr is kept for failure messages. */
function runPeer(
  args: string[],
  onLine: (line: Record<string, unknown>) => void,
): { child: ChildProcessWithoutNullStreams; stderr: () => string } {
  const child = spawn(PEER, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => {
    stderr += c;
  });
  createInterface({ input: child.stdout }).on('line', (line) => onLine(JSON.parse(line) as Record<string, unknown>));
  return { child, stderr: () => stderr };
}

class GoServer {
  readonly events: Record<string, unknown>[] = [];
  private constructor(
    readonly child: ChildProcessWithoutNullStreams,
    readonly port: number,
  ) {}

  static start(args: string[] = [], listen = '127.0.0.1:0'): Promise<GoServer> {
    return new Promise((resolve, reject) => {
      let server: GoServer | undefined;
      const events: Record<string, unknown>[] = [];
      const peer = runPeer(['server', '-listen', listen, ...args], (line) => {
        if (line.event === 'listening' && !server) {
          server = new GoServer(peer.child, Number(String(line.address).split(':').pop()));
          server.events.push(...events);
          resolve(server);
        } else (server?.events ?? events).push(line);
      });
      peer.child.once('exit', (code) => reject(new Error(`grpc-peer server exited (${code}): ${peer.stderr()}`)));
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }
}

class GoClient {
  private readonly waiting: ((r: Result) => void)[] = [];
  private readonly peer: ReturnType<typeof runPeer>;

  constructor(port: number, args: string[] = []) {
    this.peer = runPeer(['client', '-target', `127.0.0.1:${port}`, ...args], (line) => this.waiting.shift()?.(line as unknown as Result));
  }

  /** One command on the client's one connection; the results come back in order. */
  run(command: Record<string, unknown>): Promise<Result> {
    return new Promise((resolve, reject) => {
      if (this.peer.child.exitCode !== null) reject(new Error(`grpc-peer client exited: ${this.peer.stderr()}`));
      this.waiting.push(resolve);
      this.peer.child.stdin.write(`${JSON.stringify(command)}\n`);
    });
  }

  unary(msg: string, extra: Record<string, unknown> = {}): Promise<Result> {
    return this.run({ op: 'unary', msg, ...extra });
  }

  close(): void {
    this.peer.child.stdin.end();
  }
}

/** The probe: one call, then only PINGs every 100 ms, until the server closes the connection. */
function probe(port: number, args: string[] = []): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    let result: ProbeResult | undefined;
    const peer = runPeer(['probe', '-target', `127.0.0.1:${port}`, '-ping', '100ms', '-for', '10s', ...args], (line) => {
      result = line as unknown as ProbeResult;
    });
    peer.child.once('exit', (code) => (result ? resolve(result) : reject(new Error(`grpc-peer probe exited (${code}): ${peer.stderr()}`))));
  });
}

let dir: string;
let ca: DevCertificateAuthority;
let server: GoServer;
let tlsServer: GoServer;
let outbound: Sidecar;
let inbound: Sidecar;
let outboundAlone: Sidecar;
/** -cert/-key/-ca flags for a grpc-go peer with a certificate from the sidecars' dev CA. */
let clientTls: string[];

async function peerCertificate(name: string): Promise<string[]> {
  const bundle = await ca.issue({ commonName: name, dnsNames: [name], ttlSeconds: 3600 });
  const files = { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`), ca: path.join(dir, 'ca.crt') };
  writeFileSync(files.cert, bundle.certPem);
  writeFileSync(files.key, bundle.keyPem);
  writeFileSync(files.ca, ca.certPem);
  return ['-cert', files.cert, '-key', files.key, '-ca', files.ca];
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'grpc-go-'));
  ca = await DevCertificateAuthority.create();
  const source = new DevCertificateSource(ca);
  clientTls = [...(await peerCertificate('grpc-client.test')), '-server-name', 'localhost'];
  server = await GoServer.start();
  tlsServer = await GoServer.start(await peerCertificate('grpc-server.test'));
  const limits = { idleTimeout: IDLE_TIMEOUT };
  inbound = await startSidecar(
    {
      identity: { source: 'dev', commonName: 'server.test', dnsNames: ['localhost'] },
      inbound: [{ name: 'grpc', mode: 'h2', listen: '127.0.0.1:0', target: `127.0.0.1:${server.port}`, limits }],
    },
    {},
    { source },
  );
  outbound = await startSidecar(
    {
      identity: { source: 'dev', commonName: 'client.test', dnsNames: ['client.test'] },
      outbound: [
        {
          name: 'pair',
          mode: 'h2',
          listen: '127.0.0.1:0',
          target: `127.0.0.1:${inbound.listenerAddress('grpc').port}`,
          serverName: 'localhost',
          limits,
        },
      ],
    },
    {},
    { source },
  );
  outboundAlone = await startSidecar(
    {
      identity: { source: 'dev', commonName: 'caller.test', dnsNames: ['caller.test'] },
      outbound: [
        {
          name: 'alone',
          mode: 'h2',
          listen: '127.0.0.1:0',
          target: `127.0.0.1:${tlsServer.port}`,
          serverName: 'grpc-server.test',
          limits,
        },
      ],
    },
    {},
    { source },
  );
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await stopAllSidecars();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The status answers every path must carry intact, Trailers-Only ones first. */
async function expectStatuses(client: GoClient): Promise<void> {
  for (const [code, name] of [
    [5, 'NOT_FOUND'],
    [7, 'PERMISSION_DENIED'],
    [12, 'UNIMPLEMENTED'],
    [3, 'INVALID_ARGUMENT'],
  ] as const) {
    // Failed before any message: grpc-go answers Trailers-Only (one HEADERS frame, END_STREAM).
    expect(await client.unary(`fail:${code}:no ${name}`)).toMatchObject({
      code: name,
      message: `no ${name}`,
      details: [`detail:no ${name}`],
      trailer: { 'x-trailer': [`t-fail:${code}:no ${name}`], 'x-trailer-bin': ['AAEC/w=='] },
    });
  }
  // A method the server does not have, and the health protocol's unknown service.
  expect(await client.unary('x', { method: '/peer.Test/Nope' })).toMatchObject({
    code: 'UNIMPLEMENTED',
    message: 'unknown method Nope for service peer.Test',
  });
  expect(await client.run({ op: 'health_check', service: 'nope' })).toMatchObject({ code: 'NOT_FOUND', message: 'unknown service' });
  // A streaming call failed before its first message.
  expect(await client.run({ op: 'server_stream', msg: 'n:0:fail:8:exhausted' })).toMatchObject({
    code: 'RESOURCE_EXHAUSTED',
    message: 'exhausted',
    details: ['detail:exhausted'],
    trailer: { 'x-trailer': ['stream'] },
  });
}

describe('a grpc-go client and server through an outbound and an inbound sidecar', () => {
  let client: GoClient;
  beforeAll(() => {
    client = new GoClient(outbound.listenerAddress('pair').port, ['-keepalive', '10s']);
  });
  afterAll(() => client.close());

  it('carries status codes, messages and details of calls that fail before any message (Trailers-Only)', async () => {
    await expectStatuses(client);
  });

  it('carries the status sent after messages', async () => {
    expect(await client.run({ op: 'server_stream', msg: 'n:3:fail:9:too late' })).toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: 'too late',
      details: ['detail:too late'],
      replies: ['m0', 'm1', 'm2'],
      trailer: { 'x-trailer': ['stream'] },
    });
  });

  it('carries request metadata, response headers and trailers, text and binary', async () => {
    expect(await client.unary('hello', { metadata: { 'x-req': 'a', 'x-data-bin': 'raw' } })).toMatchObject({
      code: 'OK',
      reply: 'hello',
      header: { 'echo-x-req': ['a'], 'echo-x-data-bin': [Buffer.from('raw').toString('base64')] },
      trailer: { 'x-trailer': ['t-hello'], 'x-trailer-bin': ['AAEC/w=='] },
    });
    expect(await client.unary('big:4194000')).toMatchObject({ code: 'OK', reply: '4194000 bytes' });
  });

  it('streams both ways', async () => {
    const many = Array.from({ length: 200 }, (_, i) => `c${i}`);
    expect(await client.run({ op: 'client_stream', msgs: many })).toMatchObject({
      code: 'OK',
      replies: [`count:200,bytes:${many.join('').length}`],
    });
    const served = await client.run({ op: 'server_stream', msg: 'n:300' });
    expect(served).toMatchObject({ code: 'OK' });
    expect(served.replies).toHaveLength(300);
    expect(await client.run({ op: 'bidi', msgs: ['a', 'b', 'c'], metadata: { 'x-who': 'bidi' } })).toMatchObject({
      code: 'OK',
      replies: ['echo:a', 'echo:b', 'echo:c'],
      header: { 'echo-x-who': ['bidi'] },
    });
    // A bidi stream that fails after its first exchange.
    expect(await client.run({ op: 'bidi', msgs: ['a', 'fail:10:aborted'] })).toMatchObject({
      code: 'ABORTED',
      details: ['detail:aborted'],
      replies: ['echo:a'],
    });
  });

  it('carries a deadline and a cancellation to the server', async () => {
    const before = server.events.length;
    // Below idleTimeout: a call silent for that long is cut by the sidecar (504, UNAVAILABLE).
    expect(await client.unary('wait', { timeoutMs: 500 })).toMatchObject({ code: 'DEADLINE_EXCEEDED' });
    // The server got the deadline (grpc-timeout), and its call ended when it passed.
    await vi.waitFor(() => expect(server.events.length).toBeGreaterThan(before));
    const ended = server.events[before] as { err: string; hadDeadline: boolean; deadlineLeftMs: number };
    expect(ended).toMatchObject({ event: 'wait_done', hadDeadline: true });
    expect(['context deadline exceeded', 'context canceled']).toContain(ended.err);
    expect(ended.deadlineLeftMs).toBeGreaterThan(0);
    expect(ended.deadlineLeftMs).toBeLessThanOrEqual(500);
    const next = server.events.length;
    expect(await client.unary('wait', { cancelMs: 300 })).toMatchObject({ code: 'CANCELED' });
    await vi.waitFor(() =>
      expect(server.events.slice(next)).toContainEqual(
        expect.objectContaining({ event: 'wait_done', err: 'context canceled', hadDeadline: false }),
      ),
    );
  });

  it('answers health Check and Watch', async () => {
    expect(await client.run({ op: 'health_check', service: '' })).toMatchObject({ code: 'OK', statuses: ['SERVING'] });
    expect(await client.run({ op: 'health_check', service: 'peer.Test' })).toMatchObject({ code: 'OK', statuses: ['SERVING'] });
    expect(await client.run({ op: 'health_watch', service: 'peer.Test', msgs: ['NOT_SERVING', 'SERVING'] })).toMatchObject({
      code: 'OK',
      statuses: ['SERVING', 'NOT_SERVING', 'SERVING'],
    });
    expect(await client.run({ op: 'health_watch', service: 'unknown.Service', msgs: [] })).toMatchObject({
      code: 'OK',
      statuses: ['SERVICE_UNKNOWN'],
    });
  });

  it('keeps a keepalive client working across idle periods longer than idleTimeout', async () => {
    for (const round of [1, 2]) {
      expect(await client.unary(`before ${round}`)).toMatchObject({ code: 'OK' });
      const { connections, goaways } = await client.run({ op: 'state' });
      // The outbound sidecar closes the idle connection, GOAWAY first, however the client PINGs;
      // grpc-go then goes IDLE and its next call connects again.
      await vi.waitFor(async () => expect(await client.run({ op: 'state' })).toMatchObject({ state: 'IDLE' }), {
        timeout: 5000,
        interval: 200,
      });
      expect(await client.unary(`after ${round}`)).toMatchObject({
        code: 'OK',
        reply: `after ${round}`,
        connections: connections + 1,
        goaways: goaways + 1,
      });
    }
  });

  it('closes an idle connection with GOAWAY and the last stream id, outbound and inbound', async () => {
    // One call, then PINGs every 100 ms (ten times per idleTimeout): still closed, GOAWAY first.
    // Inbound: the probe speaks to the inbound sidecar directly, with a client certificate.
    const seen = await Promise.all([probe(outbound.listenerAddress('pair').port), probe(inbound.listenerAddress('grpc').port, clientTls)]);
    for (const one of seen) {
      expect(one).toMatchObject({ callStatus: '0', goaway: true, goawayCode: 'NO_ERROR', lastStreamId: 1, closed: true });
      expect(one.pings).toBeGreaterThan(0);
    }
  });

  it('recovers when the server restarts', async () => {
    expect(await client.unary('up')).toMatchObject({ code: 'OK' });
    await server.stop();
    expect(await client.unary('down')).toMatchObject({ code: 'UNAVAILABLE' });
    server = await GoServer.start([], `127.0.0.1:${server.port}`);
    await vi.waitFor(async () => expect(await client.unary('again')).toMatchObject({ code: 'OK', reply: 'again' }), {
      timeout: 5000,
      interval: 100,
    });
  });
});

describe('each sidecar alone against a grpc-go TLS peer', () => {
  it('inbound: a grpc-go TLS client gets the statuses of a plaintext grpc-go app', async () => {
    const client = new GoClient(inbound.listenerAddress('grpc').port, clientTls);
    try {
      await expectStatuses(client);
      expect(await client.run({ op: 'server_stream', msg: 'n:2:fail:9:late' })).toMatchObject({
        code: 'FAILED_PRECONDITION',
        replies: ['m0', 'm1'],
      });
    } finally {
      client.close();
    }
  });

  it('outbound: a plaintext grpc-go client gets the statuses of a grpc-go mTLS server', async () => {
    const client = new GoClient(outboundAlone.listenerAddress('alone').port);
    try {
      await expectStatuses(client);
      expect(await client.unary('hi', { metadata: { 'x-req': 'b' } })).toMatchObject({ code: 'OK', header: { 'echo-x-req': ['b'] } });
    } finally {
      client.close();
    }
  });
});
