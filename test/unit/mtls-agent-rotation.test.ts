/**
 * The upgrade agent across a rotation (outbound http mode's WebSocket path). A refused upgrade
 * answered with keep-alive puts its socket back in the agent's pool; after a rotation that socket
 * presents the old certificate, and must never carry a request of the new generation. Node's Agent
 * names a socket again when it is freed and when it closes: named with the generation of that
 * later moment, the old socket was handed to the next request (the upstream saw the old serial)
 * and its entry stayed in agent.sockets after it closed. Real TLS, a real upstream.
 */
import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MtlsAgent } from '../../src/proxy/http/mtls-agent.js';
import type { Upstream } from '../../src/proxy/upstream.js';
import type { TlsGeneration, TlsProvider } from '../../src/tls/generation.js';
import { TestPki } from '../support/pki.js';

const pki = TestPki.create('agent-rotation');
const server = pki.leaf('upstream', { cn: 'localhost', dns: ['localhost'] });
const clients = [pki.leaf('client-1', { cn: 'client.test' }), pki.leaf('client-2', { cn: 'client.test' })];
const generations: TlsGeneration[] = clients.map((c, i) => ({
  id: i + 1,
  server: {},
  client: tls.createSecureContext({ cert: c.cert, key: c.key, ca: [pki.ca.cert] }),
}));
let current = 0;
const serial = (pem: string) => new X509Certificate(pem).serialNumber;
const provider: TlsProvider = {
  current: () => generations[current] as TlsGeneration,
  peerIssuerProblem: () => undefined,
  keepCurrent: () => () => undefined,
};

/** Each upgrade request the upstream saw: its path, the connection it came on, the client's serial, whether the TLS session was resumed. */
const seen: { path: string; connection: number; serial: string; resumed: boolean }[] = [];
let upstream: https.Server;
let port: number;

beforeAll(async () => {
  let connections = 0;
  const ids = new WeakMap<object, number>();
  upstream = https.createServer({ cert: server.cert, key: server.key, ca: [pki.ca.cert], requestCert: true, rejectUnauthorized: true });
  upstream.on('secureConnection', (socket) => ids.set(socket, ++connections));
  // No 'upgrade' listener: Node hands upgrade requests to 'request', which refuses each with a
  // keep-alive 426, as an app that does not speak WebSocket on a path does.
  upstream.on('request', (req, res) => {
    const socket = req.socket as tls.TLSSocket;
    seen.push({
      path: req.url ?? '',
      connection: ids.get(socket) ?? 0,
      serial: socket.getPeerCertificate().serialNumber,
      resumed: socket.isSessionReused(),
    });
    const answer = () => res.writeHead(426, { connection: 'keep-alive', 'content-length': '0' }).end();
    if (req.url === '/slow') setTimeout(answer, 200);
    else if (req.url === '/slow-close') setTimeout(() => res.writeHead(403, { connection: 'close', 'content-length': '0' }).end(), 300);
    else answer();
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  port = (upstream.address() as AddressInfo).port;
});
afterAll(() => upstream.close());

function upgradeRequest(agent: MtlsAgent, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path, agent, headers: { connection: 'upgrade', upgrade: 'websocket' } });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('upgrade', () => reject(new Error('unexpected upgrade')));
    req.on('error', reject);
    req.end();
  });
}

const upstreamDescription = {
  tlsOptions: () => ({ secureContext: provider.current().client, servername: 'localhost', rejectUnauthorized: true }),
  expectedName: 'localhost',
} as unknown as Upstream;
const entries = (pools: NodeJS.ReadOnlyDict<unknown[]>) => Object.entries(pools).filter(([, list]) => (list?.length ?? 0) > 0);

it('never sends a request of the new generation over a socket of the old one, and forgets the old socket once it closes', async () => {
  current = 0;
  seen.length = 0;
  const agent = new MtlsAgent(provider, upstreamDescription, 5000);
  // The upgrade path refuses; Node treats a non-101 answer to an upgrade as a plain response.
  expect(await upgradeRequest(agent, '/before')).toBe(426);
  current = 1; // the rotation
  expect(await upgradeRequest(agent, '/after')).toBe(426);
  const [before, after] = seen;
  expect(before?.serial).toBe(serial(clients[0]?.cert ?? ''));
  expect(after?.serial).toBe(serial(clients[1]?.cert ?? ''));
  expect(after?.connection).not.toBe(before?.connection);
  // The old generation's socket was closed when it came back free; nothing of it is left.
  await new Promise((r) => setTimeout(r, 100));
  expect(entries(agent.sockets).map(([name]) => name)).toEqual([]);
  expect(entries(agent.freeSockets).map(([name]) => name.replace(/.*:g/, 'g'))).toEqual(['g2']);
  agent.destroy();
});

it('does the same when the rotation comes while the refused upgrade is still in flight', async () => {
  current = 0;
  seen.length = 0;
  const agent = new MtlsAgent(provider, upstreamDescription, 5000);
  const slow = upgradeRequest(agent, '/slow');
  await new Promise((r) => setTimeout(r, 50));
  current = 1; // the rotation, while /slow waits for its answer
  expect(await slow).toBe(426);
  expect(await upgradeRequest(agent, '/next')).toBe(426);
  const [first, next] = seen;
  expect(first?.serial).toBe(serial(clients[0]?.cert ?? ''));
  expect(next?.serial).toBe(serial(clients[1]?.cert ?? ''));
  expect(next?.connection).not.toBe(first?.connection);
  await new Promise((r) => setTimeout(r, 100));
  expect(entries(agent.sockets).map(([name]) => name.replace(/.*:g/, 'g'))).toEqual([]);
  expect(entries(agent.freeSockets).map(([name]) => name.replace(/.*:g/, 'g'))).toEqual(['g2']);
  agent.destroy();
});

it('gives an upgrade queued before the rotation a connection with the new certificate, never the old session', async () => {
  current = 0;
  seen.length = 0;
  const agent = new MtlsAgent(provider, upstreamDescription, 5000);
  // A first connection, so the agent has a TLS session of generation 1 cached.
  expect(await upgradeRequest(agent, '/warm')).toBe(426);
  // One socket per upstream: the next request waits in the agent's queue for the busy one.
  agent.maxSockets = 1;
  const busy = upgradeRequest(agent, '/slow-close');
  await new Promise((r) => setTimeout(r, 50));
  const queued = upgradeRequest(agent, '/queued');
  current = 1; // the rotation, while /queued waits
  expect(await busy).toBe(403);
  expect(await queued).toBe(426);
  const last = seen.find((s) => s.path === '/queued');
  // A new connection (the busy one closed), made after the rotation: the new certificate, in full.
  expect(last?.serial).toBe(serial(clients[1]?.cert ?? ''));
  expect(last?.resumed).toBe(false);
  agent.destroy();
});
