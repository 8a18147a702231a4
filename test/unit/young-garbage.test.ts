/**
 * YoungGarbage: a young collection after every `everyBytes` of body relayed — counted with a fake
 * collector, and against V8 itself: dead buffers outside the heap are freed by the real one.
 */
import { describe, expect, it } from 'vitest';
import { v8Gc } from '../../src/memory/v8-gc.js';
import { SCAVENGE_EVERY_BYTES, YoungGarbage } from '../../src/memory/young-garbage.js';

const MB = 1024 * 1024;

describe('YoungGarbage', () => {
  it('collects once per SCAVENGE_EVERY_BYTES relayed, whatever the chunk sizes', () => {
    let collections = 0;
    const garbage = new YoungGarbage(() => {
      collections++;
    });
    garbage.relayed(SCAVENGE_EVERY_BYTES - 1);
    expect(collections).toBe(0);
    garbage.relayed(1);
    expect(collections).toBe(1);
    for (let i = 0; i < 64; i++) garbage.relayed(64 * 1024); // another 4 MiB in 64 KB reads
    expect(collections).toBe(2);
    for (let i = 0; i < 4; i++) garbage.relayed(16 * 1024); // a little more: not yet
    expect(collections).toBe(2);
  });

  it('does nothing without a collector', () => {
    expect(() => new YoungGarbage(undefined).relayed(100 * MB)).not.toThrow();
  });

  it("frees dead buffers with V8's young collection", async () => {
    const gc = v8Gc();
    expect(gc).toBeTypeOf('function');
    expect('gc' in globalThis).toBe(false);
    const garbage = new YoungGarbage(() => gc?.({ type: 'minor' }), 1);
    garbage.relayed(1); // start from a clean young generation
    const before = process.memoryUsage().arrayBuffers;
    // 12.5 MB of dead 64 KB buffers: below the 32 MB at which V8 would collect them by itself.
    for (let i = 0; i < 200; i++) Buffer.allocUnsafeSlow(64 * 1024);
    expect(process.memoryUsage().arrayBuffers - before).toBeGreaterThan(10 * MB);
    garbage.relayed(1);
    // V8 may hand the freeing to a background thread: give it a moment.
    for (let i = 0; i < 50 && process.memoryUsage().arrayBuffers - before > 2 * MB; i++) await new Promise((r) => setTimeout(r, 20));
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(2 * MB);
  });
});
