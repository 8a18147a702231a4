/**
 * tcp mode through two sidecars (app → outbound of A → inbound of B → TCP server), with real
 * Vault certificates: bytes both ways, half-close honoured, and a denied peer cut off right after
 * its handshake.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { parsePrometheus, sampleValue } from '../support/prometheus.js';
import { startSidecar, stopAllSidecars, vaultSection } from '../support/sidecars.js';

const vault = inject('vault');
const env = { VAULT_TOKEN: vault.rootToken };
let echoServer: net.Server;
let echoPort: number;

beforeAll(async () => {
  // Echoes everything, and answers "bye" only after the client has half-closed (like a server
  // that reads a whole request before answering).
  echoServer = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('data', (chunk) => socket.write(chunk));
    socket.on('end', () => socket.end('bye'));
  });
  await new Promise<void>((resolve) => echoServer.listen(0, '127.0.0.1', resolve));
  echoPort = (echoServer.address() as net.AddressInfo).port;
});

afterAll(async () => {
  await stopAllSidecars();
  echoServer.close();
});

/**
 * Sends `payload`, half-closes, and collects everything until the other side closes. A slow
 * reader stops reading for a while after the first chunk and briefly every few chunks, so the
 * sidecars' writes to it queue up again and again.
 */
function exchange(port: number, payload: Buffer, slowReader = false): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => {
      // Stop after the first chunk, then now and then, so writes to this socket queue up again and again.
      if (slowReader && chunks.length % 8 === 0) {
        socket.pause();
        setTimeout(() => socket.resume(), chunks.length === 0 ? 300 : 5);
      }
      chunks.push(c);
    });
    socket.on('end', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
    socket.on('connect', () => socket.end(payload));
  });
}

async function chain(callerSpiffe: string) {
  const b = await startSidecar(
    {
      vault: vaultSection(vault),
      identity: { commonName: 'db.test', dnsNames: ['db.test'], ttl: '10m' },
      inbound: [
        {
          name: 'db',
          mode: 'tcp',
          listen: '127.0.0.1:0',
          target: `127.0.0.1:${echoPort}`,
          authorization: { allow: [{ spiffe: 'spiffe://test/ns/*/sa/api' }] },
        },
      ],
    },
    env,
  );
  const a = await startSidecar(
    {
      vault: vaultSection(vault),
      identity: { commonName: 'api.test', uriSans: [callerSpiffe], ttl: '10m' },
      outbound: [
        { name: 'db', mode: 'tcp', listen: '127.0.0.1:0', target: `127.0.0.1:${b.listenerAddress('db').port}`, serverName: 'db.test' },
      ],
    },
    env,
  );
  return { a, b };
}

it('carries bytes both ways through two sidecars and honours half-close', async () => {
  const { a } = await chain('spiffe://test/ns/prod/sa/api');
  // Random bytes, many reads long: a read buffer reused too early would show as corruption.
  const payload = randomBytes(4 * 1024 * 1024);
  for (const slowReader of [false, true]) {
    const reply = await exchange(a.listenerAddress('db').port, payload, slowReader);
    expect(reply.length).toBe(payload.length + 3);
    expect(reply.subarray(0, payload.length).equals(payload)).toBe(true);
    expect(reply.subarray(payload.length).toString()).toBe('bye');
  }
});

it('closes a denied peer’s connection right after the handshake', async () => {
  const { a, b } = await chain('spiffe://test/ns/prod/sa/intruder');
  const reply = await exchange(a.listenerAddress('db').port, Buffer.from('SELECT 1')).catch(() => Buffer.alloc(0));
  expect(reply.length).toBe(0);
  const samples = parsePrometheus(await b.metrics.text());
  expect(sampleValue(samples, 'sidecar_authz_denials_total', { listener: 'db' })).toBe(1);
});
