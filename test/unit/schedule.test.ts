import { describe, expect, it } from 'vitest';
import { backoffDelaySeconds, renewAt } from '../../src/identity/schedule.js';

const policy = { fraction: 2 / 3, jitter: 0.1 };
const notBefore = new Date('2026-01-01T00:00:00Z');
const notAfter = new Date('2026-01-01T01:00:00Z');

describe('renewAt', () => {
  it('renews at 2/3 of the lifetime when the jitter draw is in the middle', () => {
    expect(renewAt(notBefore, notAfter, notBefore, 0.5, policy).toISOString()).toBe('2026-01-01T00:40:00.000Z');
  });

  it('spreads renewals across fraction ± jitter', () => {
    expect(renewAt(notBefore, notAfter, notBefore, 0, policy).getTime() - notBefore.getTime()).toBeCloseTo(3600_000 * (2 / 3 - 0.1), -1);
    expect(renewAt(notBefore, notAfter, notBefore, 1, policy).getTime() - notBefore.getTime()).toBeCloseTo(3600_000 * (2 / 3 + 0.1), -1);
  });

  it('never schedules in the past', () => {
    const late = new Date('2026-01-01T00:55:00Z');
    expect(renewAt(notBefore, notAfter, late, 0.5, policy)).toEqual(late);
  });

  it('measures the lifetime from notBefore (Vault backdates it)', () => {
    const backdated = new Date(notBefore.getTime() - 30_000);
    const at = renewAt(backdated, notAfter, notBefore, 0.5, policy);
    expect(at.getTime()).toBe(backdated.getTime() + ((notAfter.getTime() - backdated.getTime()) * 2) / 3);
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
