/**
 * IdleHeap's decisions, with a counted collector and scripted heap sizes and loop utilization; the
 * real collector against V8 is proven in e2e/run-command (a started sidecar logs its compaction).
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { GROWTH_BYTES, IDLE_UTILIZATION, IdleHeap, memoryReducingCollect } from '../../src/memory/idle-heap.js';

const MB = 1024 * 1024;

function scripted(opts: { utilization: number[]; heap: number[] }) {
  let collections = 0;
  const heap = [...opts.heap];
  const utilization = [...opts.utilization];
  const idleHeap = new IdleHeap({
    logger: pino({ level: 'silent' }),
    collect: () => {
      collections++;
    },
    heapSize: () => heap.shift() ?? 0,
    utilization: () => utilization.shift() ?? 0,
    checkEveryMs: 60_000,
  });
  return { idleHeap, collections: () => collections };
}

describe('IdleHeap', () => {
  it('compacts once when start-up is done', () => {
    // heap read before and after the collection
    const s = scripted({ utilization: [], heap: [40 * MB, 20 * MB] });
    s.idleHeap.start();
    s.idleHeap.stop();
    expect(s.collections()).toBe(1);
  });

  it('compacts an idle loop only after the heap grew by GROWTH_BYTES since the last compaction', () => {
    const s = scripted({
      utilization: [0, 0, 0],
      // start: 40 → 20; check 1: grew by less than GROWTH_BYTES; check 2: grew by it → before, after
      heap: [40 * MB, 20 * MB, 20 * MB + GROWTH_BYTES - 1, 20 * MB + GROWTH_BYTES, 50 * MB, 21 * MB],
    });
    s.idleHeap.start();
    s.idleHeap.stop();
    expect(s.idleHeap.check()).toBe(false);
    expect(s.idleHeap.check()).toBe(true);
    expect(s.collections()).toBe(2);
  });

  it('never compacts while the loop is busy, however much the heap grew', () => {
    const s = scripted({ utilization: [IDLE_UTILIZATION, 0.5, 1], heap: [40 * MB, 20 * MB, 200 * MB, 200 * MB, 200 * MB] });
    s.idleHeap.start();
    s.idleHeap.stop();
    expect([s.idleHeap.check(), s.idleHeap.check(), s.idleHeap.check()]).toEqual([false, false, false]);
    expect(s.collections()).toBe(1);
  });

  it('does nothing when V8 gives no collector', () => {
    const idleHeap = new IdleHeap({
      logger: pino({ level: 'silent' }),
      collect: undefined,
      heapSize: () => 100 * MB,
      utilization: () => 0,
    });
    idleHeap.start();
    expect(idleHeap.check()).toBe(false);
    idleHeap.stop();
  });

  it("gets V8's collector without putting gc on the global object", () => {
    const collect = memoryReducingCollect();
    expect(collect).toBeTypeOf('function');
    expect('gc' in globalThis).toBe(false);
  });
});
