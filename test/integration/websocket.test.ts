/** A WebSocket echo through two sidecars (app → outbound of A → inbound of B → WebSocket server). */
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { startSidecar, stopAllSidecars, vaultSection } from '../support/sidecars.js';

const vault = inject('vault');
const env = { VAULT_TOKEN: vault.rootToken };
let wss: WebSocketServer;

beforeAll(async () => {
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  wss.on('connection', (socket, req) => {
    socket.send(`caller ${String(req.headers['x-forwarded-client-cert'] ?? 'unknown').includes('sa/chat-client')}`);
    socket.on('message', (data) => socket.send(`echo ${data.toString()}`));
  });
  await new Promise((resolve) => wss.once('listening', resolve));
});

afterAll(async () => {
  await stopAllSidecars();
  wss.close();
});

it('carries a WebSocket conversation through two sidecars', async () => {
  const b = await startSidecar(
    {
      vault: vaultSection(vault),
      identity: { commonName: 'chat.test', dnsNames: ['chat.test'], ttl: '10m' },
      inbound: [{ name: 'chat', listen: '127.0.0.1:0', target: `127.0.0.1:${(wss.address() as AddressInfo).port}` }],
    },
    env,
  );
  const a = await startSidecar(
    {
      vault: vaultSection(vault),
      identity: { commonName: 'chat-client.test', uriSans: ['spiffe://test/ns/default/sa/chat-client'], ttl: '10m' },
      outbound: [{ name: 'chat', listen: '127.0.0.1:0', target: `127.0.0.1:${b.listenerAddress('chat').port}`, serverName: 'chat.test' }],
    },
    env,
  );
  const ws = new WebSocket(`ws://127.0.0.1:${a.listenerAddress('chat').port}/room`);
  const messages: string[] = [];
  await new Promise<void>((resolve, reject) => {
    ws.on('error', reject);
    ws.on('message', (data) => {
      messages.push(data.toString());
      if (messages.length === 1) ws.send('hello');
      if (messages.length === 2) resolve();
    });
  });
  ws.close();
  expect(messages).toEqual(['caller true', 'echo hello']);
});
