/**
 * V8's gc() for the sidecar's own memory management (idle-heap.ts, young-garbage.ts), taken from
 * a fresh `vm` context so that no global `gc` appears for our code or its dependencies.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

export type V8Gc = (options: { type: 'major'; flavor: 'last-resort' } | { type: 'minor' }) => void;

let looked = false;
let gc: V8Gc | undefined;

/** V8's gc function (looked up once); undefined when this V8 refuses --expose-gc. */
export function v8Gc(): V8Gc | undefined {
  if (looked) return gc;
  looked = true;
  try {
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as V8Gc;
  } catch {
    gc = undefined;
  }
  return gc;
}
