/**
 * Timers for delays of any length. Node's setTimeout holds at most 2^31−1 ms (24.8 days); a longer
 * delay fires at once with a TimeoutOverflowWarning — which made a 365-day certificate renew and
 * republish about 200 times a second, and a 32-day Vault token renew in a loop. A long timer waits
 * in steps and checks the wall clock at each, so it fires once, at its time.
 */

/** The longest delay setTimeout honours. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export interface LongTimer {
  /** Cancels the timer; safe to call more than once, and after it fired. */
  clear(): void;
  /** Lets the process exit while only this timer is pending (like Timeout.unref()). */
  unref(): LongTimer;
}

export function setLongTimeout(callback: () => void, delayMs: number, now: () => number = Date.now): LongTimer {
  const due = now() + (Number.isFinite(delayMs) ? Math.max(0, delayMs) : 0);
  let handle: NodeJS.Timeout | undefined;
  let unrefed = false;
  const arm = () => {
    const remaining = due - now();
    handle = setTimeout(
      () => {
        if (due - now() > 0) arm();
        else callback();
      },
      Math.min(Math.max(0, remaining), MAX_TIMEOUT_MS),
    );
    if (unrefed) handle.unref();
  };
  arm();
  const timer: LongTimer = {
    clear: () => clearTimeout(handle),
    unref() {
      unrefed = true;
      handle?.unref();
      return timer;
    },
  };
  return timer;
}
