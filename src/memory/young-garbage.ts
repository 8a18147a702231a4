/**
 * Bounds the dead buffers that relayed bodies leave behind in http and h2 mode. Each read of a
 * socket is a fresh buffer outside V8's heap (64 KB for a plaintext socket, 16 KB for TLS), dead
 * as soon as it is written on. V8 frees such buffers at a young-generation collection, and starts one when
 * its semi-space (4 MB) fills with JavaScript objects — a relayed megabyte makes few of those — or
 * once 32 MB of young buffers have piled up. So a sidecar relaying 1 MiB bodies carried ~30 MB of
 * dead buffers, and malloc kept their pages: ~190 MB peak RSS. A young collection after every
 * SCAVENGE_EVERY_BYTES of body relayed frees them while they are few (docs/benchmark.md "Footprint"). Each
 * one takes ~0.1 ms: the young generation is small and mostly dead.
 */
import { v8Gc } from './v8-gc.js';

/** Body bytes relayed between two young collections. */
export const SCAVENGE_EVERY_BYTES = 4 * 1024 * 1024;

export class YoungGarbage {
  #relayed = 0;

  constructor(
    /** A young-generation collection; undefined when this V8 does not expose gc (then nothing is done). */
    private readonly scavenge: (() => void) | undefined,
    private readonly everyBytes = SCAVENGE_EVERY_BYTES,
  ) {}

  /** `bytes` of body went through (their buffers are garbage soon): collects after every `everyBytes`. */
  relayed(bytes: number): void {
    this.#relayed += bytes;
    if (this.#relayed < this.everyBytes) return;
    this.#relayed = 0;
    this.scavenge?.();
  }
}

const gc = v8Gc();
/** The process's one account: the young generation is the process's. */
export const youngGarbage = new YoungGarbage(gc && (() => gc({ type: 'minor' })));
