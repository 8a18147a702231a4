/** Long timers: delays past setTimeout's 24.8-day limit fire once, at their time, not at once. */
import { afterEach, expect, it, vi } from 'vitest';
import { MAX_TIMEOUT_MS, setLongTimeout } from '../../src/timers.js';

afterEach(() => {
  vi.useRealTimers();
});

it.each([
  ['365 days', 365 * 86_400_000],
  ['the 24.8-day limit plus one', MAX_TIMEOUT_MS + 1],
  ['825 days', 825 * 86_400_000],
])('fires once after %s, not before', (_what, delayMs) => {
  vi.useFakeTimers({ now: 0 });
  const fired = vi.fn();
  setLongTimeout(fired, delayMs);
  vi.advanceTimersByTime(delayMs - 1);
  expect(fired).not.toHaveBeenCalled();
  vi.advanceTimersByTime(1);
  expect(fired).toHaveBeenCalledTimes(1);
  vi.advanceTimersByTime(10 * MAX_TIMEOUT_MS);
  expect(fired).toHaveBeenCalledTimes(1);
});

it('fires at once for zero, negative or non-finite delays, and never after clear()', () => {
  vi.useFakeTimers({ now: 0 });
  const fired = vi.fn();
  setLongTimeout(fired, -5);
  setLongTimeout(fired, Number.NaN);
  vi.advanceTimersByTime(0);
  expect(fired).toHaveBeenCalledTimes(2);
  const cleared = vi.fn();
  setLongTimeout(cleared, 40 * 86_400_000).clear();
  vi.advanceTimersByTime(50 * 86_400_000);
  expect(cleared).not.toHaveBeenCalled();
});
