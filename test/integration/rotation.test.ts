/**
 * Background renewal against real Vault with a 30 s certificate: new connections see a new
 * serial, while a client looping on one keep-alive connection through the rotation sees no failure.
 */
import type http from 'node:http';
import https from 'node:https';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { startEchoApp } from '../../src/demo/echo-app.js';
import { acceptAnyName, httpsRequest, issueFromVault, startSidecar, stopAllSidecars, vaultSection } from '../support/sidecars.js';

const vault = inject('vault');
let app: http.Server;

beforeAll(async () => {
  app = (await startEchoApp()).server;
});

afterAll(async () => {
  await stopAllSidecars();
  app.closeAllConnections();
  app.close();
});

it('renews on its own and swaps the certificate without failing a keep-alive client', { timeout: 90_000 }, async () => {
  const appPort = (app.address() as { port: number }).port;
  const sidecar = await startSidecar(
    {
      vault: vaultSection(vault),
      identity: { commonName: 'rotating.test', dnsNames: ['localhost'], ttl: '30s' },
      inbound: [{ name: 'app', listen: '127.0.0.1:0', target: `127.0.0.1:${appPort}` }],
    },
    { VAULT_TOKEN: vault.rootToken },
  );
  const port = sidecar.listenerAddress('app').port;
  const client = await issueFromVault(vault, 'looper.test');
  const firstSerial = (await httpsRequest(port, client)).serverSerial;

  // One keep-alive connection, looping requests for the whole test.
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, checkServerIdentity: acceptAnyName });
  let ok = 0;
  const failures: string[] = [];
  const connections = new Set<number>();
  const loopSerials = new Set<string>();
  let looping = true;
  const loop = (async () => {
    while (looping) {
      try {
        const res = await httpsRequest(port, { ...client, agent });
        connections.add(res.localPort);
        loopSerials.add(res.serverSerial);
        if (res.status === 200) ok++;
        else failures.push(`status ${res.status}`);
      } catch (err) {
        failures.push(String(err));
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();

  // New connections: poll until one sees a new serial (Vault backdates notBefore by 30 s, so the
  // lifetime is ~60 s and the renewal point ~40 s in; allow for jitter).
  let rotatedSerial = firstSerial;
  const deadline = Date.now() + 60_000;
  while (rotatedSerial === firstSerial && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    rotatedSerial = (await httpsRequest(port, client)).serverSerial;
  }
  // Keep the loop going a little past the swap.
  await new Promise((r) => setTimeout(r, 1000));
  looping = false;
  await loop;
  agent.destroy();

  expect(rotatedSerial).not.toBe(firstSerial);
  expect(sidecar.store.current()?.info.serial.replace(/:/g, '').toUpperCase()).toBe(rotatedSerial.toUpperCase());
  expect(failures).toEqual([]);
  expect(ok).toBeGreaterThan(20);
  // The loop stayed on one connection, which kept the certificate it was opened with.
  expect(connections.size).toBe(1);
  expect([...loopSerials]).toEqual([firstSerial]);
});
