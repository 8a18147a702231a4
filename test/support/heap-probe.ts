/**
 * The memory of a sidecar process the test started (spawnCli), measured from outside through the
 * V8 inspector: a full collection first, so the heap is what is still referenced (live), not
 * what garbage happens to be uncollected. The product has no switch for this; the inspector is
 * Node's own and needs only NODE_OPTIONS (INSPECT_ENV) at spawn.
 */
import type { Spawned } from './cli.js';
import { waitFor } from './cli.js';

/** Environment for spawnCli: the inspector on a free loopback port, printed on stderr. */
export const INSPECT_ENV = { NODE_OPTIONS: '--inspect=127.0.0.1:0' } as const;

export interface MemorySample {
  /** V8 heap in use after a full collection, bytes. */
  readonly heapUsed: number;
  /** Resident set size, bytes. */
  readonly rss: number;
}

export interface HeapProbe {
  /** Forces full collections in the sidecar, then reads its memory. */
  measure(): Promise<MemorySample>;
  /** Writes a heap snapshot in the sidecar's process (for a person comparing retainers); returns its path. */
  snapshot(file: string): Promise<string>;
  close(): void;
}

interface InspectorReply {
  id: number;
  result?: { result?: { value?: unknown } };
  error?: { message: string };
}

/** Connects to the inspector of `run`, which must have been spawned with INSPECT_ENV. */
export async function heapProbe(run: Spawned): Promise<HeapProbe> {
  let url = '';
  await waitFor(
    () => {
      url = /ws:\/\/\S+/.exec(run.stderr())?.[0] ?? '';
      return url !== '';
    },
    10_000,
    () => `the inspector address on the sidecar's stderr (was it spawned with INSPECT_ENV?): ${run.stderr()}`,
  );
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error(`cannot reach the sidecar's inspector at ${url}`));
  });
  let nextId = 0;
  const pending = new Map<number, (reply: InspectorReply) => void>();
  ws.onmessage = (event) => {
    const reply = JSON.parse(String(event.data)) as InspectorReply;
    pending.get(reply.id)?.(reply);
    pending.delete(reply.id);
  };
  const call = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<InspectorReply>((resolve, reject) => {
      const id = ++nextId;
      pending.set(id, (reply) => (reply.error ? reject(new Error(`${method}: ${reply.error.message}`)) : resolve(reply)));
      ws.send(JSON.stringify({ id, method, params }));
    });
  const evaluate = async (expression: string): Promise<unknown> =>
    (await call('Runtime.evaluate', { expression, returnByValue: true })).result?.result?.value;
  return {
    async measure() {
      // Twice: objects with finalizers or weak callbacks are only freed by the second one.
      await call('HeapProfiler.collectGarbage');
      await call('HeapProfiler.collectGarbage');
      const usage = JSON.parse(String(await evaluate('JSON.stringify(process.memoryUsage())'))) as NodeJS.MemoryUsage;
      return { heapUsed: usage.heapUsed, rss: usage.rss };
    },
    async snapshot(file) {
      return String(await evaluate(`process.getBuiltinModule('v8').writeHeapSnapshot(${JSON.stringify(file)})`));
    },
    close: () => ws.close(),
  };
}

/** Megabytes, for messages. */
export const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
