/** The SidecarError `fn` throws; fails the test when it throws none. */
import type { SidecarError } from '../../src/errors.js';

export function errorOf(fn: () => unknown): SidecarError {
  try {
    fn();
  } catch (err) {
    return err as SidecarError;
  }
  throw new Error('expected an error');
}
