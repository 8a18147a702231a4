/**
 * Issue 24, defect 6: the admin server in injected pods and the chart listens on 0.0.0.0:15000 (the
 * kubelet probes it from the node) with no connection cap and Node's default timeouts: 3,000
 * half-sent requests from another pod were all accepted and held. Now it has the listeners'
 * limits — a cap that sheds the oldest connection not being answered, header, request and
 * keep-alive timeouts — and from outside the pod it serves probes and metrics only.
 */
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/cli.js';
import { type RecordingApp, type SidecarUnderAttack, startRecordingApp, startSidecarUnderAttack } from './harness.js';

/** An address of this machine that is not loopback: what another pod's packets look like. */
function podAddress(): string {
  const address = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
  if (!address) throw new Error('this test needs a non-loopback IPv4 interface to call from');
  return address;
}

let sidecar: SidecarUnderAttack;
let app: RecordingApp;

beforeAll(async () => {
  app = await startRecordingApp();
  sidecar = await startSidecarUnderAttack({
    inbound: [{ name: 'web', target: `127.0.0.1:${app.port}` }],
    extra: { admin: { listen: '0.0.0.0:0' } },
  });
});

afterAll(() => app?.close());

/** Opens `count` connections that each send half a request line and then nothing. */
async function halfSent(count: number): Promise<{ sockets: net.Socket[]; open: () => number; destroy: () => void }> {
  const sockets: net.Socket[] = [];
  let open = 0;
  await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<void>((resolve) => {
          const socket = net.connect({ host: podAddress(), port: sidecar.adminPort });
          sockets.push(socket);
          socket.on('error', () => resolve());
          socket.on('connect', () => {
            open++;
            socket.write('GET /healthz HTTP/1.1\r\nHost: admin\r\nX-Slow: ');
            resolve();
          });
          socket.on('close', () => {
            open--;
            resolve();
          });
          socket.resume();
        }),
    ),
  );
  return {
    sockets,
    open: () => open,
    destroy: () => {
      for (const s of sockets) s.destroy();
    },
  };
}

const get = (host: string, path: string) => fetch(`http://${host}:${sidecar.adminPort}${path}`);

describe('a flood of half-sent requests from another pod', () => {
  it('holds at most the cap of them, and probes and metrics are still answered meanwhile', async () => {
    const flood = await halfSent(1000);
    try {
      await waitFor(
        () => flood.open() <= 64,
        10_000,
        () => `the admin server to shed the flood (${flood.open()} still open)`,
      );
      for (const path of ['/readyz', '/healthz', '/metrics']) expect((await get(podAddress(), path)).status).toBe(200);
      expect((await get('127.0.0.1', '/readyz')).status).toBe(200);
    } finally {
      flood.destroy();
    }
    await sidecar.assertAlive('web');
  }, 30_000);

  it('cuts a connection that never finishes its headers', async () => {
    const slow = await halfSent(5);
    await waitFor(
      () => slow.open() === 0,
      15_000,
      () => `the admin server to cut silent requests (${slow.open()} still open)`,
    );
    await sidecar.assertAlive('web');
  }, 20_000);
});

describe('what another pod may call', () => {
  it('gets probes and metrics only: /certs and /rotate answer loopback callers', async () => {
    const appSawBefore = app.requests.length;
    for (const path of ['/healthz', '/readyz', '/metrics']) expect((await get(podAddress(), path)).status).toBe(200);
    const certs = await get(podAddress(), '/certs');
    expect(certs.status).toBe(403);
    expect(((await certs.json()) as { error: { code: string } }).error.code).toBe('SIDECAR_ADMIN_FORBIDDEN');
    expect((await fetch(`http://${podAddress()}:${sidecar.adminPort}/rotate`, { method: 'POST' })).status).toBe(403);
    // In the pod (kubectl port-forward arrives on loopback too), /certs is served.
    expect((await get('127.0.0.1', '/certs')).status).toBe(200);
    expect(app.requests.length).toBe(appSawBefore);
    await sidecar.assertAlive('web');
  });
});
