/**
 * The proxy core given its dial function (ListenerDeps.dial): an outbound tcp and h2 listener
 * driven with a dialer that fails, one that never answers, and one that throws — no target, no
 * network, just the listener's own handling. Each time the app gets its answer (a close for tcp,
 * a 502 with the reason for h2) within the listener's bounds, the failure is counted, and the
 * listener still serves the next call. ghostunnel's proxy_test.go does the same for its proxy.
 */
import http2 from 'node:http2';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import type { OutboundListenerConfig } from '../../src/config/schema/index.js';
import { ErrorCodes } from '../../src/errors.js';
import { createOutboundH2Listener } from '../../src/proxy/h2/outbound-h2.js';
import type { Listener, ListenerDeps, TlsDial } from '../../src/proxy/listener-types.js';
import { createOutboundTcpListener } from '../../src/proxy/tcp/outbound-tcp.js';
import { AuditLog } from '../../src/telemetry/audit.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import type { TlsProvider } from '../../src/tls/generation.js';
import { capturingLogger } from '../support/logs.js';
import { TestPki } from '../support/pki.js';
import { parsePrometheus } from '../support/prometheus.js';

const pki = TestPki.create('dialer');
const ours = pki.leaf('ours', { cn: 'ours.test', dns: ['ours.test'] });
const secureContext = tls.createSecureContext({ cert: ours.cert, key: ours.key, ca: [pki.ca.cert] });
const provider: TlsProvider = {
  current: () => ({ id: 1, server: { cert: ours.cert, key: ours.key, ca: [pki.ca.cert] }, client: secureContext }),
  peerIssuerProblem: () => undefined,
  keepCurrent: () => () => undefined,
};

/** A TLS socket over a stream that swallows what it is sent and never answers: a target that accepted and went silent. */
const silentDial: TlsDial = (options) =>
  new tls.TLSSocket(new Duplex({ read() {}, write: (_chunk, _encoding, done) => done() }), {
    ...options,
    isServer: false,
  } as tls.TLSSocketOptions);

/** A dial refused the way a closed port refuses: the socket errors on the next tick. */
const refusedDial: TlsDial = (options) => {
  const socket = silentDial(options);
  process.nextTick(() => socket.destroy(Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:443'), { code: 'ECONNREFUSED' })));
  return socket;
};

/** A dial that throws (tls.connect does, for options it cannot use). */
const throwingDial: TlsDial = () => {
  throw Object.assign(new Error('The "options.port" property must be a valid port'), { code: 'ERR_SOCKET_BAD_PORT' });
};

function outboundConfig(mode: 'tcp' | 'h2'): OutboundListenerConfig {
  const config = buildConfig(
    {
      identity: { source: 'dev', commonName: 'ours.test' },
      outbound: [{ name: `out-${mode}`, mode, listen: '127.0.0.1:0', target: 'upstream.test:8443', limits: { connectTimeout: 1 } }],
    },
    {},
  );
  const [listener] = config.outbound;
  if (!listener) throw new Error('no outbound listener parsed');
  return listener;
}

const started: Listener[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((l) => l.drain(100)));
});

async function start(mode: 'tcp' | 'h2', dial: TlsDial) {
  const metrics = new Metrics();
  const logs = capturingLogger();
  const deps: ListenerDeps = { contexts: provider, logger: logs.logger, metrics, audit: new AuditLog(logs.logger), dial };
  const listener = (mode === 'tcp' ? createOutboundTcpListener : createOutboundH2Listener)(outboundConfig(mode), 0, deps);
  started.push(listener);
  const { port } = await listener.listen();
  return { port, metrics, logs };
}

/** A tcp client: connects, sends a line, and resolves with how the connection ended and after how long. */
function tcpCall(port: number): Promise<{ ended: string; ms: number; received: number }> {
  const at = performance.now();
  return new Promise((resolve) => {
    let received = 0;
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      received += chunk.length;
    });
    socket.on('error', (err: Error & { code?: string }) =>
      resolve({ ended: err.code ?? err.message, ms: performance.now() - at, received }),
    );
    socket.on('close', () => resolve({ ended: 'close', ms: performance.now() - at, received }));
  });
}

/** An h2 call through the listener: the status and body, or the error. */
function h2Call(port: number): Promise<{ status: number | string; body: string; ms: number }> {
  const at = performance.now();
  return new Promise((resolve) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => undefined);
    const req = session.request({ ':method': 'GET', ':path': '/svc/Call' });
    let status: number | string = 0;
    let body = '';
    req.setEncoding('utf8');
    req.on('response', (headers) => {
      status = Number(headers[':status']);
    });
    req.on('data', (chunk: string) => {
      body += chunk;
    });
    req.on('error', (err: Error & { code?: string }) => {
      status = err.code ?? err.message;
    });
    req.on('close', () => {
      session.close();
      resolve({ status, body, ms: performance.now() - at });
    });
    req.end();
  });
}

const unreachable = (metrics: Metrics, listener: string) =>
  metrics.registry.metrics().then((text) => parsePrometheus(text).filter((s) => s.labels.listener === listener));

describe('outbound tcp with a dialer that', () => {
  it('fails: the app connection is closed at once and nothing is sent back; the next call is handled too', async () => {
    const { port, logs } = await start('tcp', refusedDial);
    for (let i = 0; i < 2; i++) {
      const call = await tcpCall(port);
      expect(call.received).toBe(0);
      expect(['close', 'ECONNRESET']).toContain(call.ended);
      expect(call.ms).toBeLessThan(900);
    }
    expect(logs.lines.filter((l) => l.event === 'upstream_unreachable')).not.toHaveLength(0);
  });

  it('never answers: the app connection is closed at limits.connectTimeout, not held', async () => {
    const { port } = await start('tcp', silentDial);
    const call = await tcpCall(port);
    expect(call.received).toBe(0);
    expect(call.ms).toBeGreaterThanOrEqual(900);
    expect(call.ms).toBeLessThan(5000);
  });

  it('throws: the app connection is closed and the listener keeps serving', async () => {
    const { port } = await start('tcp', throwingDial);
    expect((await tcpCall(port)).received).toBe(0);
    expect((await tcpCall(port)).received).toBe(0);
  });
});

describe('outbound h2 with a dialer that', () => {
  it('fails: the call gets a 502 naming the unreachable target; so does the next', async () => {
    const { port, metrics } = await start('h2', refusedDial);
    for (let i = 0; i < 2; i++) {
      const call = await h2Call(port);
      expect(call.status).toBe(502);
      expect(JSON.parse(call.body)).toMatchObject({ error: { code: ErrorCodes.UPSTREAM_UNREACHABLE } });
      expect(call.body).toContain('ECONNREFUSED');
    }
    expect(await unreachable(metrics, 'out-h2')).not.toHaveLength(0);
  });

  it('never answers: the call gets a 502 within limits.connectTimeout, not held', async () => {
    const { port } = await start('h2', silentDial);
    const call = await h2Call(port);
    expect(call.status).toBe(502);
    expect(JSON.parse(call.body)).toMatchObject({ error: { code: ErrorCodes.UPSTREAM_UNREACHABLE } });
    expect(call.body).toContain('ETIMEDOUT');
    expect(call.ms).toBeGreaterThanOrEqual(900);
    expect(call.ms).toBeLessThan(5000);
  });

  it('throws: the call gets a 502 and the listener keeps serving', async () => {
    const { port } = await start('h2', throwingDial);
    expect((await h2Call(port)).status).toBe(502);
    expect((await h2Call(port)).status).toBe(502);
  });
});
