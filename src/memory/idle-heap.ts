/**
 * Gives memory back to the OS while the sidecar is idle. V8 grows its heap for start-up (modules,
 * config parsing, TLS set-up) and for traffic bursts, and its own memory reducer only shrinks it
 * once it measures a low allocation rate — which it measures at garbage collections, and an idle
 * process runs none, so it never does (`--trace-memory-reducer` prints "high alloc" every 8 s,
 * forever). One memory-reducing full collection after start-up takes an idle sidecar from ~85 to
 * ~75 MiB RSS; after a burst, once the event loop has been idle for a while, the same gives back
 * the grown young generation and what the burst left behind. Cost: one pause of ~20 ms, only ever
 * while nothing is being served (docs/benchmark.md "Footprint").
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { v8Gc } from './v8-gc.js';

/** How often idleness is checked. */
export const IDLE_CHECK_MS = 10_000;
/** Idle: the event loop was busy less than this share of the last check interval. */
export const IDLE_UTILIZATION = 0.02;
/** Compact again only when the heap (with its external buffers) grew this much since the last time. */
export const GROWTH_BYTES = 8 * 1024 * 1024;

/** V8's heap plus the buffers it accounts for outside it, in bytes. */
export type HeapSize = () => number;
/** A memory-reducing full collection. */
export type Collect = () => void;

const heapSize: HeapSize = () => {
  const usage = process.memoryUsage();
  return usage.heapTotal + usage.external;
};

/**
 * A full collection with V8's "last-resort" flavour (one that shrinks the young generation and
 * compacts, as its memory reducer does). Undefined when this V8 does not expose gc.
 */
export function memoryReducingCollect(): Collect | undefined {
  const gc = v8Gc();
  return gc && (() => gc({ type: 'major', flavor: 'last-resort' }));
}

export interface IdleHeapOptions {
  logger: Logger;
  collect?: Collect | undefined;
  heapSize?: HeapSize;
  /** Event-loop utilization since the previous call (0–1); performance.eventLoopUtilization by default. */
  utilization?: () => number;
  checkEveryMs?: number;
}

export class IdleHeap {
  readonly #logger: Logger;
  readonly #collect: Collect | undefined;
  readonly #heapSize: HeapSize;
  readonly #utilization: () => number;
  readonly #checkEveryMs: number;
  #afterLastCompaction = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: IdleHeapOptions) {
    this.#logger = options.logger;
    this.#collect = 'collect' in options ? options.collect : memoryReducingCollect();
    this.#heapSize = options.heapSize ?? heapSize;
    this.#utilization = options.utilization ?? eventLoopUtilization();
    this.#checkEveryMs = options.checkEveryMs ?? IDLE_CHECK_MS;
  }

  /** Compacts now (start-up is done), then whenever idle after the heap grew. */
  start(): void {
    const collect = this.#collect;
    if (!collect) {
      this.#logger.debug('idle heap compaction unavailable: this V8 does not expose gc');
      return;
    }
    this.#compact(collect, 'start-up done');
    this.#timer = setInterval(() => this.check(), this.#checkEveryMs).unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One periodic check: compacts when the loop was idle and the heap grew since the last compaction. */
  check(): boolean {
    const collect = this.#collect;
    if (!collect || this.#utilization() >= IDLE_UTILIZATION) return false;
    if (this.#heapSize() - this.#afterLastCompaction < GROWTH_BYTES) return false;
    this.#compact(collect, 'idle after the heap grew');
    return true;
  }

  #compact(collect: Collect, reason: string): void {
    const before = this.#heapSize();
    const started = performance.now();
    collect();
    this.#afterLastCompaction = this.#heapSize();
    this.#logger.debug(
      { reason, beforeBytes: before, afterBytes: this.#afterLastCompaction, pauseMs: Math.round(performance.now() - started) },
      'heap compacted',
    );
  }
}

/** Event-loop utilization over each interval between calls. */
function eventLoopUtilization(): () => number {
  let last = performance.eventLoopUtilization();
  return () => {
    const now = performance.eventLoopUtilization();
    const delta = performance.eventLoopUtilization(now, last);
    last = now;
    return delta.utilization;
  };
}
