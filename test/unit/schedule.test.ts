import { describe, expect, it } from 'vitest';
import { backoffDelaySeconds, type RenewalPolicy, renewAt } from '../../src/identity/schedule.js';

const policy: RenewalPolicy = { windowStart: 0.5, windowEnd: 0.7, outageBudget: 120 };
const notBefore = new Date('2026-01-01T00:00:00Z');
const notAfter = new Date('2026-01-01T01:00:00Z');
const minutesAfter = (base: Date, at: Date) => (at.getTime() - base.getTime()) / 60_000;

/** A seeded PRNG (mulberry32), so the fleet simulation is the same on every run. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('renewAt', () => {
  it('renews inside the 50–70% window, at the point the random draw picks', () => {
    expect(minutesAfter(notBefore, renewAt(notBefore, notAfter, notBefore, 0, policy))).toBeCloseTo(30);
    expect(minutesAfter(notBefore, renewAt(notBefore, notAfter, notBefore, 0.5, policy))).toBeCloseTo(36);
    expect(minutesAfter(notBefore, renewAt(notBefore, notAfter, notBefore, 1, policy))).toBeCloseTo(42);
  });

  it('never renews later than notAfter minus the outage budget', () => {
    const budget = { ...policy, outageBudget: 25 * 60 };
    expect(minutesAfter(notBefore, renewAt(notBefore, notAfter, notBefore, 1, budget))).toBeCloseTo(35);
    expect(minutesAfter(notBefore, renewAt(notBefore, notAfter, notBefore, 0, budget))).toBeCloseTo(30);
  });

  it('narrows to the window start, never earlier, when the budget exceeds what the lifetime allows', () => {
    const huge = { ...policy, outageBudget: 10 * 3600 };
    expect(minutesAfter(notBefore, renewAt(notBefore, notAfter, notBefore, 1, huge))).toBeCloseTo(30);
  });

  it('counts a backdated certificate from when it arrived, so a 30 s certificate does not renew in a loop', () => {
    // Vault backdates notBefore by 30 s: issued "now" with ttl 30 s, valid from now−30 s.
    const now = new Date('2026-01-01T00:00:30Z');
    const at = renewAt(notBefore, new Date('2026-01-01T00:01:00Z'), now, 0, { ...policy, outageBudget: 0 });
    expect((at.getTime() - now.getTime()) / 1000).toBeCloseTo(15);
  });

  it('tolerates a notBefore a few seconds in the future (clock skew)', () => {
    const skewed = new Date(notBefore.getTime() + 5000);
    const at = renewAt(skewed, notAfter, notBefore, 0, policy);
    expect(at.getTime()).toBe(skewed.getTime() + (notAfter.getTime() - skewed.getTime()) * 0.5);
  });

  it('renews a certificate already past its window after half of what is left', () => {
    const late = new Date('2026-01-01T00:50:00Z');
    expect(minutesAfter(late, renewAt(notBefore, notAfter, late, 0, { ...policy, outageBudget: 0 }))).toBeCloseTo(5);
  });
});

describe('a fleet of 10,000 sidecars started in the same second', () => {
  /** Renewal times of every sidecar up to `hours`, each renewing the certificate the previous renewal brought. */
  function simulate(hours: number): number[][] {
    const random = seeded(42);
    const ttlMs = 3600_000;
    const fleet: number[][] = [];
    for (let i = 0; i < 10_000; i++) {
      const renewals: number[] = [];
      let issued = notBefore.getTime() + random() * 1000;
      while (issued < notBefore.getTime() + hours * 3600_000) {
        // Vault backdates notBefore by 30 s.
        issued = renewAt(new Date(issued - 30_000), new Date(issued + ttlMs), new Date(issued), random(), policy).getTime();
        renewals.push(issued);
      }
      fleet.push(renewals);
    }
    return fleet;
  }

  function busiestMinuteRatio(times: number[], fromMinute: number, toMinute: number): number {
    const perMinute = new Map<number, number>();
    for (const t of times) {
      const minute = Math.floor((t - notBefore.getTime()) / 60_000);
      if (minute >= fromMinute && minute < toMinute) perMinute.set(minute, (perMinute.get(minute) ?? 0) + 1);
    }
    const counted = [...perMinute.values()].reduce((a, b) => a + b, 0);
    return Math.max(...perMinute.values()) / (counted / (toMinute - fromMinute));
  }

  const fleet = simulate(24);

  it('spreads the first renewals so that no minute carries more than 1.5× the average', () => {
    const first = fleet.map((renewals) => renewals[0] ?? 0);
    const minutes = first.map((t) => (t - notBefore.getTime()) / 60_000);
    const [from, to] = [Math.floor(Math.min(...minutes)), Math.floor(Math.max(...minutes)) + 1];
    expect(to - from).toBeGreaterThanOrEqual(12);
    expect(busiestMinuteRatio(first, from, to)).toBeLessThanOrEqual(1.5);
  });

  it('keeps later rounds spread too (hours 12 to 24)', () => {
    expect(busiestMinuteRatio(fleet.flat(), 12 * 60, 24 * 60)).toBeLessThanOrEqual(1.5);
  });
});

describe('backoffDelaySeconds', () => {
  it('grows exponentially up to the cap', () => {
    expect(backoffDelaySeconds(0, 1, 60, 1)).toBe(1);
    expect(backoffDelaySeconds(3, 1, 60, 1)).toBe(8);
    expect(backoffDelaySeconds(20, 1, 60, 1)).toBe(60);
  });

  it('uses full jitter with a small floor, never zero', () => {
    expect(backoffDelaySeconds(5, 1, 60, 0.5)).toBe(16);
    expect(backoffDelaySeconds(5, 1, 60, 0)).toBe(0.1);
  });
});
