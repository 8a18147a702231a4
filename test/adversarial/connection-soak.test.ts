/**
 * Threat: memory kept per connection. Anything a listener keeps for a connection or h2 session
 * after it closed adds up to an OOM kill (defect 14 was one: ~2.4 KB per h2 session). The soak
 * opens and closes every kind of connection in every direction — h2 sessions, http keep-alive and
 * `Connection: close`, WebSocket, tcp; through an outbound sidecar into an inbound one, and
 * straight into the inbound one with a client certificate — and checks that each sidecar's live
 * heap (after a full collection, heap-probe.ts) and RSS come back to near where they started once
 * the connections are closed.
 *
 * SOAK_CONNECTIONS (per kind and direction) is small by default so the suite stays quick; the
 * issue's full run is `SOAK_CONNECTIONS=100000 npx vitest run test/adversarial/connection-soak.test.ts`
 * (hours on two cores; SOAK_KINDS=h2,tcp runs only the kinds whose names contain one of those,
 * SOAK_DIRECTIONS=outbound or inbound only one direction). When SOAK_CONNECTIONS is set, each
 * kind's time and both sidecars' memory after it are printed.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { waitFor } from '../support/cli.js';
import { type HeapProbe, heapProbe, INSPECT_ENV, type MemorySample, mb } from '../support/heap-probe.js';
import { TestPki } from '../support/pki.js';
import { type SidecarUnderAttack, startSidecarUnderAttack } from './harness.js';
import {
  type ClientTls,
  type Exchange,
  h2Session,
  httpClose,
  httpKeepAlive,
  repeat,
  type SoakApps,
  startSoakApps,
  tcpConnection,
  webSocket,
} from './soak-clients.js';

/** Connections (or sessions) per kind and direction. */
const CONNECTIONS = Number(process.env.SOAK_CONNECTIONS ?? 500);
/** Print each kind's time and the memory after it (a long run by hand). */
const VERBOSE = process.env.SOAK_CONNECTIONS !== undefined;
/** Only the kinds whose names contain one of these, in these directions (all by default). */
const KINDS = process.env.SOAK_KINDS?.split(',').map((k) => k.trim().toLowerCase());
const DIRECTIONS = process.env.SOAK_DIRECTIONS?.split(',').map((d) => d.trim().toLowerCase());
/** Connections open at once per kind: a busy app's callers. */
const CONCURRENCY = 8;
/** Per kind, before the first measurement: code, pools and metric series are built once. */
const WARM_UP = 50;
/**
 * The live heap may grow this much over the whole soak, whatever its length: what a connection
 * leaves behind would be CONNECTIONS × kinds × its size (defect 14's 2.4 KB per h2 session and
 * 7 KB per abandoned call: 480 MB and more at 100,000 per kind).
 */
const HEAP_GROWTH_BOUND = 3 * 1024 * 1024;
/** RSS: the heap's bound plus what V8 and the allocator keep of pages the connections used. */
const RSS_GROWTH_BOUND = 48 * 1024 * 1024;

interface Sidecar {
  readonly name: string;
  readonly process: SidecarUnderAttack;
  readonly probe: HeapProbe;
}

let apps: SoakApps;
let inbound: Sidecar;
let outbound: Sidecar;
let client: ClientTls;

beforeAll(async () => {
  apps = await startSoakApps();
  const pki = TestPki.create('soak');
  const inboundProcess = await startSidecarUnderAttack({
    pki,
    inbound: [
      { name: 'web', mode: 'http', target: `127.0.0.1:${apps.httpPort}` },
      { name: 'grpc', mode: 'h2', target: `127.0.0.1:${apps.h2Port}` },
      { name: 'pipe', mode: 'tcp', target: `127.0.0.1:${apps.tcpPort}` },
    ],
    env: INSPECT_ENV,
  });
  const to = (listener: string) => ({ target: `127.0.0.1:${inboundProcess.port(listener)}`, serverName: 'localhost' });
  const outboundProcess = await startSidecarUnderAttack({
    pki,
    outbound: [
      { name: 'web-out', mode: 'http', ...to('web') },
      { name: 'grpc-out', mode: 'h2', ...to('grpc') },
      { name: 'pipe-out', mode: 'tcp', ...to('pipe') },
    ],
    env: INSPECT_ENV,
  });
  inbound = { name: 'inbound', process: inboundProcess, probe: await heapProbe(inboundProcess.run) };
  outbound = { name: 'outbound', process: outboundProcess, probe: await heapProbe(outboundProcess.run) };
  client = { pem: inboundProcess.good, ca: pki.ca.cert };
});

afterAll(() => {
  inbound?.probe.close();
  outbound?.probe.close();
  apps?.close();
});

/** Every kind of connection, each direction: the exchange, the listener it goes to, and its client TLS. */
function workloads(): { name: string; run: () => Promise<boolean> }[] {
  const kinds: [string, Exchange, string, string][] = [
    ['h2 session', h2Session, 'grpc-out', 'grpc'],
    ['http keep-alive', httpKeepAlive, 'web-out', 'web'],
    ['http Connection: close', httpClose, 'web-out', 'web'],
    ['WebSocket', webSocket, 'web-out', 'web'],
    ['tcp', tcpConnection, 'pipe-out', 'pipe'],
  ];
  const chosen = kinds.filter(([kind]) => !KINDS || KINDS.some((k) => kind.toLowerCase().includes(k)));
  return chosen
    .flatMap(([kind, exchange, outboundListener, inboundListener]) => [
      {
        name: `${kind} through the outbound sidecar`,
        direction: 'outbound',
        run: () => exchange(outbound.process.port(outboundListener), undefined),
      },
      {
        name: `${kind} into the inbound sidecar`,
        direction: 'inbound',
        run: () => exchange(inbound.process.port(inboundListener), client),
      },
    ])
    .filter((workload) => !DIRECTIONS || DIRECTIONS.includes(workload.direction));
}

/** Runs `count` of every workload; the names of those where an exchange did not come back whole. */
async function soak(count: number, verbose = false): Promise<string[]> {
  const failed: string[] = [];
  for (const workload of workloads()) {
    const started = performance.now();
    const ok = await repeat(count, CONCURRENCY, workload.run);
    if (ok !== count) failed.push(`${workload.name}: ${count - ok} of ${count}`);
    if (verbose) await progress(`${count} × ${workload.name} in ${Math.round((performance.now() - started) / 1000)} s`);
  }
  return failed;
}

/** One line for a run by hand: what was done, and each sidecar's memory after it. */
async function progress(done: string): Promise<void> {
  const memory = [];
  for (const sidecar of [inbound, outbound]) {
    const sample = await sidecar.probe.measure();
    memory.push(`${sidecar.name} heap ${mb(sample.heapUsed)} RSS ${mb(sample.rss)}`);
  }
  console.log(`${new Date().toISOString()} ${done}: ${memory.join(', ')}`);
}

/** Open connections of a sidecar, all listeners. */
const openConnections = async (sidecar: Sidecar) => (await sidecar.process.metric('sidecar_connections_active')) ?? 0;

/**
 * Until the clients' connections are closed: none left on the outbound sidecar; on the inbound one
 * only the outbound sidecar's pooled connections (its h2 session and idle keep-alive connections).
 */
async function connectionsClosed(): Promise<void> {
  await waitFor(async () => (await openConnections(outbound)) === 0, 15_000, 'the outbound sidecar to have no connection open');
  let last = Number.POSITIVE_INFINITY;
  await waitFor(
    async () => {
      const now = await openConnections(inbound);
      const settled = now <= CONCURRENCY + 1 && now === last;
      last = now;
      return settled;
    },
    15_000,
    'the inbound sidecar to have only pooled connections open',
  );
}

async function measure(): Promise<Map<string, MemorySample>> {
  return new Map([
    [inbound.name, await inbound.probe.measure()],
    [outbound.name, await outbound.probe.measure()],
  ]);
}

it(
  `returns to its starting memory after ${CONNECTIONS} connections of every kind and direction are opened and closed`,
  async () => {
    expect(await soak(WARM_UP)).toEqual([]);
    await connectionsClosed();
    const before = await measure();
    const reachedBefore = { ...apps.reached };

    // What the clients got: every exchange came back whole.
    expect(await soak(CONNECTIONS, VERBOSE)).toEqual([]);
    await connectionsClosed();
    const after = await measure();

    for (const sidecar of [inbound, outbound]) {
      const start = before.get(sidecar.name) as MemorySample;
      const end = after.get(sidecar.name) as MemorySample;
      const report = `${sidecar.name} sidecar after ${CONNECTIONS} connections per kind and direction: heap ${mb(start.heapUsed)} → ${mb(end.heapUsed)}, RSS ${mb(start.rss)} → ${mb(end.rss)}`;
      if (VERBOSE) console.log(report);
      expect(end.heapUsed - start.heapUsed, `${report}: closed connections are still referenced`).toBeLessThan(HEAP_GROWTH_BOUND);
      expect(end.rss - start.rss, `${report}: memory is not given back`).toBeLessThan(RSS_GROWTH_BOUND);
    }

    // What reached the apps: each exchange, once, from both directions. A plain GET may arrive
    // twice, rarely (3 of 300,000 in a 100,000 run; most likely the outbound pool resending an
    // idempotent request whose pooled connection closed as it was sent, as RFC 9110 §9.2.2 allows).
    const ran = (kind: string) => workloads().filter((w) => w.name.startsWith(kind)).length * CONNECTIONS;
    const httpRequests = 2 * ran('http keep-alive') + ran('http Connection: close');
    expect(apps.reached.http - reachedBefore.http).toBeGreaterThanOrEqual(httpRequests);
    expect(apps.reached.http - reachedBefore.http).toBeLessThanOrEqual(httpRequests * 1.0001);
    expect(apps.reached.webSockets - reachedBefore.webSockets).toBe(ran('WebSocket'));
    expect(apps.reached.h2 - reachedBefore.h2).toBe(ran('h2 session'));
    expect(apps.reached.tcp - reachedBefore.tcp).toBe(ran('tcp'));

    // Both still serve a good client, each kind, and are alive.
    expect(await soak(1)).toEqual([]);
    await outbound.process.assertAlive();
    await inbound.process.assertAlive('web');
  },
  600_000 + CONNECTIONS * 200,
);
