/**
 * Issue 24 review, finding 4: the admin port's /metrics could be flooded. 64 connections, each
 * with 300 pipelined GET /metrics and reading a byte now and then, kept the event loop rendering
 * metrics, and the kubelet's probes timed out for 15 s (three misses restart the pod). The
 * metrics are now rendered at most 20 times a second (callers past that share the newest), and a
 * connection gets a bounded number of pipelined requests answered before it is closed.
 */
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type RecordingApp, type SidecarUnderAttack, startRecordingApp, startSidecarUnderAttack } from './harness.js';

let sidecar: SidecarUnderAttack;
let app: RecordingApp;

beforeAll(async () => {
  app = await startRecordingApp();
  sidecar = await startSidecarUnderAttack({ inbound: [{ name: 'web', target: `127.0.0.1:${app.port}` }] });
});

afterAll(() => app?.close());

/** A kubelet probe: its default timeoutSeconds is 1. */
const probe = () =>
  new Promise<string>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: sidecar.adminPort, path: '/healthz', timeout: 1000, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(String(res.statusCode)));
    });
    req.on('timeout', () => {
      req.destroy();
      resolve('timeout');
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });

it('64 slow readers with 300 pipelined GET /metrics each do not starve the probes', async () => {
  const requests = 'GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n'.repeat(300);
  const sockets: net.Socket[] = [];
  const answered = new Map<net.Socket, number>();
  for (let i = 0; i < 64; i++) {
    const socket = net.connect({ host: '127.0.0.1', port: sidecar.adminPort });
    socket.on('error', () => undefined);
    socket.pause();
    socket.write(requests);
    sockets.push(socket);
    answered.set(socket, 0);
  }
  // Read a byte now and then, so no connection is ever idle long enough to be cut.
  const trickle = setInterval(() => {
    for (const socket of sockets) {
      const data = socket.read(1) as Buffer | null;
      if (data) answered.set(socket, (answered.get(socket) ?? 0) + 1);
    }
  }, 500);
  try {
    await new Promise((r) => setTimeout(r, 2000));
    const results: string[] = [];
    for (let i = 0; i < 10; i++) {
      results.push(await probe());
      await new Promise((r) => setTimeout(r, 1000));
    }
    // What the kubelet saw: every probe answered.
    expect(
      results.filter((r) => r !== '200'),
      results.join(' '),
    ).toEqual([]);
  } finally {
    clearInterval(trickle);
    for (const socket of sockets) socket.destroy();
  }
  // The sidecar still serves the app and its probes.
  await sidecar.assertAlive('web');
}, 60_000);
