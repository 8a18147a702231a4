/**
 * The SNI an outbound listener sends is its `serverName`, in every mode. In http mode undici took
 * the SNI from the Host header (the target's host), not from serverName: an upstream that routes
 * on SNI (a TLS load balancer, an ingress with several certificates) got the wrong name. Real
 * upstreams record the SNI of each connection; the target is dialled by another name (localhost)
 * than the one its certificate carries and the sidecar asks for (orders.internal).
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SidecarUnderAttack, startSidecarUnderAttack } from '../adversarial/harness.js';
import { TestPki } from '../support/pki.js';

const SERVER_NAME = 'orders.internal';

interface SniRecorder {
  readonly port: number;
  /** The SNI of every TLS connection the upstream accepted, in order (`false`: none sent). */
  readonly names: (string | false | null)[];
  close(): void;
}

let pki: TestPki;
const recorders: SniRecorder[] = [];
let sidecar: SidecarUnderAttack;
let httpUpstream: SniRecorder;
let h2Upstream: SniRecorder;
let tcpUpstream: SniRecorder;

/** Starts `server` on loopback, recording the SNI of each connection that completes a handshake. */
async function recordSni(server: tls.Server): Promise<SniRecorder> {
  const names: (string | false | null)[] = [];
  server.on('secureConnection', (socket: tls.TLSSocket) => names.push(socket.servername));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const recorder = { port: (server.address() as AddressInfo).port, names, close: () => server.close() };
  recorders.push(recorder);
  return recorder;
}

beforeAll(async () => {
  pki = TestPki.create('sni');
  const orders = pki.leaf('orders', { cn: SERVER_NAME, dns: [SERVER_NAME] });
  const serverTls = { cert: orders.cert, key: orders.key, ca: pki.ca.cert, requestCert: true, rejectUnauthorized: true };
  httpUpstream = await recordSni(
    https.createServer(serverTls, (req, res) => {
      req.resume();
      res.end(`orders saw ${req.url}`);
    }),
  );
  const h2 = http2.createSecureServer({ ...serverTls, allowHTTP1: false });
  h2.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200 });
    stream.end('orders over h2');
  });
  h2Upstream = await recordSni(h2);
  tcpUpstream = await recordSni(tls.createServer(serverTls, (socket) => socket.pipe(socket)));
  const outbound = (name: string, mode: string, port: number) => ({
    name,
    mode,
    target: `localhost:${port}`,
    serverName: SERVER_NAME,
  });
  sidecar = await startSidecarUnderAttack({
    pki,
    outbound: [
      outbound('orders-http', 'http', httpUpstream.port),
      outbound('orders-h2', 'h2', h2Upstream.port),
      outbound('orders-tcp', 'tcp', tcpUpstream.port),
    ],
  });
});

afterAll(() => {
  for (const r of recorders) r.close();
});

describe('outbound SNI is serverName', () => {
  it('http mode', async () => {
    const res = await fetch(`http://127.0.0.1:${sidecar.port('orders-http')}/orders/7`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('orders saw /orders/7');
    expect(httpUpstream.names.length).toBeGreaterThan(0);
    expect(new Set(httpUpstream.names)).toEqual(new Set([SERVER_NAME]));
  });

  it('h2 mode', async () => {
    const session = http2.connect(`http://127.0.0.1:${sidecar.port('orders-h2')}`);
    session.on('error', () => undefined);
    const req = session.request({ ':path': '/orders/7' });
    req.end();
    const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
    req.resume();
    await once(req, 'end');
    session.close();
    expect(headers[':status']).toBe(200);
    expect(new Set(h2Upstream.names)).toEqual(new Set([SERVER_NAME]));
  });

  it('tcp mode', async () => {
    const socket = net.connect(sidecar.port('orders-tcp'), '127.0.0.1');
    await once(socket, 'connect');
    socket.write('ping');
    const [echo] = (await once(socket, 'data')) as [Buffer];
    socket.destroy();
    expect(echo.toString()).toBe('ping');
    expect(new Set(tcpUpstream.names)).toEqual(new Set([SERVER_NAME]));
  });
});

it('stays alive', async () => {
  await sidecar.assertAlive();
});
