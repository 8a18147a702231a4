/**
 * What an operator sees of traffic: request metrics by direction and (opt-in) peer, byte counters
 * that move while a connection is open, and the opt-in access log — through real sidecars with
 * Vault certificates, in http, h2 and tcp modes.
 */
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { waitFor } from '../support/cli.js';
import { useEchoApp } from '../support/fixtures.js';
import { capturingLogger } from '../support/logs.js';
import { parsePrometheus, sampleValue } from '../support/prometheus.js';
import { httpGet, httpsRequest, issueFromVault, startSidecar, vaultSection } from '../support/sidecars.js';

const vault = inject('vault');
const env = { VAULT_TOKEN: vault.rootToken };
const CALLER = 'spiffe://test/ns/default/sa/caller';
const app = useEchoApp();

async function scrape(sidecar: { admin: { address(): AddressInfo | undefined } }) {
  return parsePrometheus((await httpGet(sidecar.admin.address()?.port ?? 0, '/metrics')).body);
}

const accessLines = (lines: Record<string, unknown>[], listener: string) =>
  lines.filter((l) => l.event === 'access' && l.listener === listener);

describe('http mode through two sidecars', () => {
  it('labels requests by direction, and by peer where asked; logs one access line per request', async () => {
    const server = capturingLogger('warn'); // the access log is written whatever the level
    const b = await startSidecar(
      {
        vault: vaultSection(vault),
        identity: { commonName: 'orders.test', dnsNames: ['orders.test'], ttl: '10m' },
        inbound: [
          { name: 'orders', listen: '127.0.0.1:0', target: `127.0.0.1:${app.port()}`, accessLog: true, metrics: { peerLabel: true } },
          { name: 'quiet', listen: '127.0.0.1:0', target: `127.0.0.1:${app.port()}` },
        ],
      },
      env,
      { logger: server.logger },
    );
    const client = capturingLogger();
    const a = await startSidecar(
      {
        vault: vaultSection(vault),
        identity: { commonName: 'caller.test', uriSans: [CALLER], ttl: '10m' },
        outbound: [
          {
            name: 'orders',
            listen: '127.0.0.1:0',
            target: `127.0.0.1:${b.listenerAddress('orders').port}`,
            serverName: 'orders.test',
            accessLog: true,
          },
        ],
      },
      env,
      { logger: client.logger },
    );
    const out = a.listenerAddress('orders').port;
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`http://127.0.0.1:${out}/items/${i}?q=1`, { method: 'POST', body: 'x'.repeat(1000) });
      expect(res.status).toBe(200);
      await res.text();
    }
    // Another caller (no SPIFFE ID) on the labelled listener, and one on the listener without a label.
    const other = await issueFromVault(vault, 'other.test');
    expect((await httpsRequest(b.listenerAddress('orders').port, other)).status).toBe(200);
    expect((await httpsRequest(b.listenerAddress('quiet').port, other)).status).toBe(200);

    const inbound = await scrape(b);
    expect(sampleValue(inbound, 'sidecar_requests_total', { listener: 'orders', direction: 'inbound', status: '200', peer: CALLER })).toBe(
      3,
    );
    expect(sampleValue(inbound, 'sidecar_requests_total', { listener: 'orders', direction: 'inbound', status: '200', peer: 'none' })).toBe(
      1,
    );
    expect(sampleValue(inbound, 'sidecar_request_duration_seconds_count', { listener: 'orders', direction: 'inbound', peer: CALLER })).toBe(
      3,
    );
    // Without the opt-in there is no peer label at all.
    const quiet = inbound.filter((s) => s.name === 'sidecar_requests_total' && s.labels.listener === 'quiet');
    expect(quiet).toEqual([
      { name: 'sidecar_requests_total', labels: { listener: 'quiet', direction: 'inbound', status: '200' }, value: 1 },
    ]);
    const outbound = await scrape(a);
    expect(sampleValue(outbound, 'sidecar_requests_total', { listener: 'orders', direction: 'outbound', status: '200' })).toBe(3);
    expect(outbound.some((s) => s.name === 'sidecar_requests_total' && 'peer' in s.labels)).toBe(false);
    expect(sampleValue(outbound, 'sidecar_bytes_received_total', { listener: 'orders', direction: 'outbound' })).toBeGreaterThan(3000);
    expect(sampleValue(inbound, 'sidecar_bytes_sent_total', { listener: 'orders', direction: 'inbound' })).toBeGreaterThan(0);

    const inboundLines = accessLines(server.lines, 'orders');
    expect(inboundLines).toHaveLength(4);
    expect(inboundLines[0]).toMatchObject({
      level: 30, // info
      event: 'access',
      direction: 'inbound',
      remoteAddress: '127.0.0.1',
      peer: CALLER,
      protocol: 'http/1.1',
      method: 'POST',
      path: '/items/0', // the query is never logged
      status: 200,
      msg: 'request',
    });
    expect(inboundLines[0]?.bytesReceived).toBeGreaterThan(1000);
    expect(inboundLines[0]?.bytesSent).toBeGreaterThan(0);
    expect(inboundLines[0]?.durationMs).toBeGreaterThanOrEqual(0);
    expect(inboundLines[3]).toMatchObject({ peer: 'other.test', method: 'GET', path: '/' });
    expect(accessLines(server.lines, 'quiet')).toEqual([]);
    const outboundLines = accessLines(client.lines, 'orders');
    expect(outboundLines).toHaveLength(3);
    expect(outboundLines[2]).toMatchObject({
      direction: 'outbound',
      peer: 'orders.test',
      method: 'POST',
      path: '/items/2',
      status: 200,
    });
    // An access line carries no certificate or key material.
    expect(JSON.stringify([...inboundLines, ...outboundLines])).not.toMatch(/BEGIN|PRIVATE/);
  });

  it('logs and counts a request the parser refused, and an aborted one', async () => {
    // An app that never answers: the client gives up first.
    const hanging = net.createServer(() => undefined);
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    const front = await startSidecar(
      {
        vault: vaultSection(vault),
        identity: { commonName: 'front.test', dnsNames: ['front.test'], ttl: '10m' },
        inbound: [{ name: 'hanging', listen: '127.0.0.1:0', target: `127.0.0.1:${(hanging.address() as AddressInfo).port}` }],
      },
      env,
    );
    const logs = capturingLogger();
    const sidecar = await startSidecar(
      {
        vault: vaultSection(vault),
        identity: { commonName: 'strict.test', dnsNames: ['strict.test'], ttl: '10m' },
        outbound: [
          {
            name: 'local',
            listen: '127.0.0.1:0',
            target: `127.0.0.1:${front.listenerAddress('hanging').port}`,
            serverName: 'front.test',
            accessLog: true,
          },
        ],
      },
      env,
      { logger: logs.logger },
    );
    const port = sidecar.listenerAddress('local').port;
    const raw = await new Promise<string>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.end('GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n'));
      let text = '';
      socket.on('data', (c) => {
        text += c;
      });
      socket.on('close', () => resolve(text));
    });
    expect(raw).toMatch(/^HTTP\/1.1 400/);
    // The app holds /slow; the client leaves before any answer.
    const controller = new AbortController();
    const slow = fetch(`http://127.0.0.1:${port}/delay?ms=2000`, { signal: controller.signal }).catch(() => 'aborted');
    await new Promise((r) => setTimeout(r, 200));
    controller.abort();
    expect(await slow).toBe('aborted');
    await waitFor(() => accessLines(logs.lines, 'local').length === 2, 5000, 'two access lines');
    const [refused, aborted] = accessLines(logs.lines, 'local');
    expect(refused).toMatchObject({ status: 400, protocol: 'http/1.1' });
    expect(aborted).toMatchObject({ status: 'aborted', method: 'GET', path: '/delay' });
    const samples = await scrape(sidecar);
    expect(sampleValue(samples, 'sidecar_requests_total', { listener: 'local', direction: 'outbound', status: '400' })).toBe(1);
    expect(sampleValue(samples, 'sidecar_requests_total', { listener: 'local', direction: 'outbound', status: 'aborted' })).toBe(1);
    hanging.close();
  });
});

describe('h2 mode', () => {
  let h2app: http2.Http2Server;
  beforeAll(async () => {
    h2app = http2.createServer();
    h2app.on('stream', (stream) => {
      let received = 0;
      stream.on('data', (c: Buffer) => {
        received += c.length;
      });
      stream.on('end', () => {
        stream.respond({ ':status': 201 });
        stream.end(`got ${received}`);
      });
    });
    await new Promise<void>((resolve) => h2app.listen(0, '127.0.0.1', resolve));
  });
  afterAll(() => h2app.close());

  /** A sidecar whose h2 listener (access log on, plus `extra`) forwards to the h2 app. */
  async function startH2Sidecar(extra: Record<string, unknown> = {}) {
    const logs = capturingLogger();
    const sidecar = await startSidecar(
      {
        vault: vaultSection(vault),
        identity: { commonName: 'grpc.test', dnsNames: ['grpc.test'], ttl: '10m' },
        inbound: [
          {
            name: 'grpc',
            mode: 'h2',
            listen: '127.0.0.1:0',
            target: `127.0.0.1:${(h2app.address() as AddressInfo).port}`,
            accessLog: true,
            ...extra,
          },
        ],
      },
      env,
      { logger: logs.logger },
    );
    return { logs, sidecar };
  }

  it('records each stream with its status, DATA bytes and the peer', async () => {
    const { logs, sidecar: b } = await startH2Sidecar({ metrics: { peerLabel: true } });
    const client = await issueFromVault(vault, 'caller.test', [CALLER]);
    const session = http2.connect(`https://127.0.0.1:${b.listenerAddress('grpc').port}`, {
      ca: client.ca,
      cert: client.cert,
      key: client.key,
      servername: 'grpc.test',
    });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = session.request({ ':method': 'POST', ':path': '/svc/Method' });
        let text = '';
        req.on('data', (c) => {
          text += c;
        });
        req.on('end', () => resolve(text));
        req.on('error', reject);
        req.end('y'.repeat(5000));
      });
      expect(body).toBe('got 5000');
    } finally {
      session.close();
    }
    await waitFor(() => accessLines(logs.lines, 'grpc').length === 1, 5000, 'the access line');
    expect(accessLines(logs.lines, 'grpc')[0]).toMatchObject({
      protocol: 'h2',
      method: 'POST',
      path: '/svc/Method',
      status: 201,
      peer: CALLER,
      bytesReceived: 5000,
      bytesSent: 'got 5000'.length,
    });
    const samples = await scrape(b);
    expect(sampleValue(samples, 'sidecar_requests_total', { listener: 'grpc', direction: 'inbound', status: '201', peer: CALLER })).toBe(1);
  });

  it('records a stream the client cancelled and a session cut by a TCP reset as aborted, and serves the next call', async () => {
    const { logs, sidecar } = await startH2Sidecar();
    const client = await issueFromVault(vault, 'caller.test', [CALLER]);
    // Over a TCP socket of our own, so the test can reset it (a TLS socket cannot be reset itself).
    const tcpSockets: net.Socket[] = [];
    const connect = () =>
      http2
        .connect(`https://127.0.0.1:${sidecar.listenerAddress('grpc').port}`, {
          createConnection: () => {
            const tcp = net.connect(sidecar.listenerAddress('grpc').port, '127.0.0.1');
            tcpSockets.push(tcp);
            return tls.connect({ socket: tcp, ...client, servername: 'grpc.test', ALPNProtocols: ['h2'] });
          },
        })
        .on('error', () => undefined);
    const uploadThen = async (session: http2.ClientHttp2Session, cut: (req: http2.ClientHttp2Stream) => void) => {
      const req = session.request({ ':method': 'POST', ':path': '/upload' });
      req.on('error', () => undefined);
      req.write(Buffer.alloc(4000, 1));
      await new Promise((r) => setTimeout(r, 100));
      cut(req);
    };
    const cancelled = connect();
    await uploadThen(cancelled, (req) => req.close(http2.constants.NGHTTP2_CANCEL));
    const cut = connect();
    await uploadThen(cut, () => tcpSockets[1]?.resetAndDestroy());
    await waitFor(() => accessLines(logs.lines, 'grpc').length === 2, 5000, 'two access lines');
    for (const line of accessLines(logs.lines, 'grpc')) expect(line).toMatchObject({ status: 'aborted', path: '/upload', bytesSent: 0 });

    const good = connect();
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = good.request({ ':method': 'POST', ':path': '/after' });
        req.on('response', (headers) => resolve(Number(headers[':status'])));
        req.on('error', reject);
        req.end('ok');
      });
      expect(status).toBe(201);
    } finally {
      good.close();
      cancelled.close();
    }
    await waitFor(() => accessLines(logs.lines, 'grpc').length === 3, 5000, 'the third access line');
    expect(accessLines(logs.lines, 'grpc')[2]).toMatchObject({ status: 201, path: '/after', bytesReceived: 2 });
  });
});

describe('tcp mode', () => {
  /** A sidecar whose tcp listener (access log on) pipes to an app that echoes and counts what it received. */
  async function startTcpSidecar() {
    let received = 0;
    const tcpApp = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.on('data', (c) => {
        received += c.length;
        socket.write(c);
      });
    });
    await new Promise<void>((resolve) => tcpApp.listen(0, '127.0.0.1', resolve));
    const logs = capturingLogger();
    const target = `127.0.0.1:${(tcpApp.address() as AddressInfo).port}`;
    const sidecar = await startSidecar(
      {
        vault: vaultSection(vault),
        identity: { commonName: 'db.test', dnsNames: ['localhost'], ttl: '10m' },
        inbound: [{ name: 'db', mode: 'tcp', listen: '127.0.0.1:0', target, accessLog: true }],
      },
      env,
      { logger: logs.logger },
    );
    return { tcpApp, logs, sidecar, appReceived: () => received };
  }

  it('moves the byte counters while a connection is open, and logs the connection when it closes', async () => {
    const { tcpApp, logs, sidecar, appReceived } = await startTcpSidecar();
    const client = await issueFromVault(vault, 'caller.test', [CALLER]);
    const socket = tls.connect({
      host: '127.0.0.1',
      port: sidecar.listenerAddress('db').port,
      ca: client.ca,
      cert: client.cert,
      key: client.key,
      servername: 'localhost',
    });
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    socket.write(Buffer.alloc(300_000, 1));
    await waitFor(() => appReceived() === 300_000, 5000, 'the app to receive 300 kB');

    // The connection is still open: the counters already carry its bytes, and no access line yet.
    const open = await scrape(sidecar);
    expect(sampleValue(open, 'sidecar_connections_active', { listener: 'db', direction: 'inbound' })).toBe(1);
    expect(sampleValue(open, 'sidecar_bytes_received_total', { listener: 'db', direction: 'inbound' })).toBeGreaterThanOrEqual(300_000);
    expect(accessLines(logs.lines, 'db')).toEqual([]);

    socket.end();
    await waitFor(() => accessLines(logs.lines, 'db').length === 1, 5000, 'the access line');
    const line = accessLines(logs.lines, 'db')[0];
    expect(line).toMatchObject({
      direction: 'inbound',
      peer: CALLER,
      remoteAddress: '127.0.0.1',
      msg: 'connection',
      bytesReceived: 300_000,
    });
    expect(line).not.toHaveProperty('status');
    const closed = await scrape(sidecar);
    expect(sampleValue(closed, 'sidecar_connections_active', { listener: 'db', direction: 'inbound' })).toBe(0);
    // Counted once: the bytes added while open are not added again at the close.
    const total = sampleValue(closed, 'sidecar_bytes_received_total', { listener: 'db', direction: 'inbound' }) ?? 0;
    expect(total).toBeGreaterThanOrEqual(300_000);
    expect(total).toBeLessThan(330_000);
    tcpApp.close();
  });

  it('logs a connection the client reset mid-upload, and serves the next one', async () => {
    const { tcpApp, logs, sidecar, appReceived } = await startTcpSidecar();
    const client = await issueFromVault(vault, 'caller.test', [CALLER]);
    const dial = async () => {
      const tcp = net.connect(sidecar.listenerAddress('db').port, '127.0.0.1');
      const socket = tls.connect({ socket: tcp, ...client, servername: 'localhost' });
      socket.on('error', () => undefined);
      await new Promise((resolve) => socket.once('secureConnect', resolve));
      return { socket, tcp };
    };
    const { socket: rude, tcp: rudeTcp } = await dial();
    rude.write(Buffer.alloc(50_000, 1));
    await waitFor(() => appReceived() === 50_000, 5000, 'the app to receive 50 kB');
    rudeTcp.resetAndDestroy();
    await waitFor(() => accessLines(logs.lines, 'db').length === 1, 5000, 'the access line');
    expect(accessLines(logs.lines, 'db')[0]).toMatchObject({ peer: CALLER, msg: 'connection', bytesReceived: 50_000 });

    const { socket: polite } = await dial();
    const echoed = new Promise<string>((resolve) => polite.once('data', (c) => resolve(String(c))));
    polite.write('ping');
    expect(await echoed).toBe('ping');
    polite.end();
    await waitFor(() => accessLines(logs.lines, 'db').length === 2, 5000, 'the second access line');
    tcpApp.close();
  });
});
