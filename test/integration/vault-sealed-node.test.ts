/**
 * Issue 29, defect 3, with the real Vault: behind a Service that keeps a sealed node in its pool (a
 * TCP balancer here), a node answers `503 Vault is sealed` on the connection the sidecar got. The
 * next attempt must open a new connection — which the balancer sends to the real Vault — and
 * succeed, at start-up and for a renewal; a kept-alive connection stayed on the sealed node.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, inject, it, vi } from 'vitest';
import { buildConfig } from '../../src/config/load.js';
import { Sidecar } from '../../src/sidecar.js';
import { testLogger } from '../support/sidecars.js';
import { hostPort, startTcpBalancer, type TcpBalancer } from '../support/tcp-balancer.js';

const vault = inject('vault');
let sealed: http.Server;
let sealedRequests = 0;
let balancer: TcpBalancer;
/** Which connections (by number) the balancer sends to the sealed node. */
const toSealed = new Set<number>([0]);
const sidecars: Sidecar[] = [];

beforeAll(async () => {
  sealed = http.createServer((req, res) => {
    sealedRequests++;
    req.resume();
    res.writeHead(503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: ['Vault is sealed'] }));
  });
  await new Promise<void>((resolve) => sealed.listen(0, '127.0.0.1', resolve));
  const sealedAt = hostPort(`http://127.0.0.1:${(sealed.address() as AddressInfo).port}`);
  balancer = await startTcpBalancer((n) => (toSealed.has(n) ? sealedAt : hostPort(vault.address)));
});

afterAll(async () => {
  await Promise.all(sidecars.map((s) => s.stop(100, 0)));
  balancer?.close();
  sealed?.closeAllConnections();
  sealed?.close();
});

it('starts on the next attempt after a sealed node, and renews on the next attempt after one', { timeout: 60_000 }, async () => {
  const config = buildConfig(
    {
      vault: { address: balancer.address, pki: { mount: vault.pkiMount, role: vault.role } },
      identity: { commonName: 'sealed-node.test', ttl: '10m' },
      inbound: [{ name: 'app', listen: '127.0.0.1:0', target: '127.0.0.1:9' }],
      admin: { listen: '127.0.0.1:0' },
    },
    { VAULT_TOKEN: vault.rootToken },
  );
  const sidecar = await Sidecar.create(config, testLogger);
  sidecars.push(sidecar);
  void sidecar.start().catch(() => undefined);
  // The first connection reached the sealed node; the certificate comes through the next one.
  await vi.waitFor(() => expect(sidecar.store.current()).toBeDefined(), { timeout: 20_000, interval: 100 });
  expect(sealedRequests).toBe(1);
  const first = sidecar.store.current()?.info.serial;

  // The Vault node restarts sealed: connections drop, and the next one lands on the sealed node.
  toSealed.add(balancer.connections());
  balancer.dropAll();
  expect(sidecar.renewer.renewNow()).toBe(true);
  await vi.waitFor(() => expect(sidecar.store.current()?.info.serial).not.toBe(first), { timeout: 20_000, interval: 100 });
  expect(sealedRequests).toBeGreaterThanOrEqual(2);
});
