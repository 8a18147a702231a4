/** What `doctor` found: one result per check, printed as a table or JSON. */
import { humanDuration } from '../inspect/certificate-report.js';

/** pass ✓, warn ! (works, but look), fail ✗ (will not work), skip - (an earlier check failed, or it does not apply). */
export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  /** Stable, for scripts: `vault.reachable`, `listener.orders`, `outbound.payments`. */
  readonly id: string;
  readonly status: CheckStatus;
  /** What was found, one line. */
  readonly detail: string;
  /** What to do about a fail or warn. */
  readonly fix?: string;
}

export interface DoctorReport {
  readonly ok: boolean;
  readonly checks: readonly CheckResult[];
}

export const pass = (id: string, detail: string): CheckResult => ({ id, status: 'pass', detail });
export const warn = (id: string, detail: string, fix: string): CheckResult => ({ id, status: 'warn', detail, fix });
export const fail = (id: string, detail: string, fix: string): CheckResult => ({ id, status: 'fail', detail, fix });
export const skip = (id: string, detail: string): CheckResult => ({ id, status: 'skip', detail });

const MARKS: Record<CheckStatus, string> = { pass: '✓', warn: '!', fail: '✗', skip: '-' };

export function report(checks: readonly CheckResult[]): DoctorReport {
  return { ok: !checks.some((c) => c.status === 'fail'), checks };
}

export function formatReport(doctor: DoctorReport, title: string): string {
  const width = Math.max(...doctor.checks.map((c) => c.id.length));
  const lines = [title, ''];
  for (const check of doctor.checks) {
    lines.push(`${MARKS[check.status]} ${check.id.padEnd(width)}  ${check.detail}`);
    if (check.fix) lines.push(`  ${' '.repeat(width)}  → ${check.fix}`);
  }
  const count = (status: CheckStatus) => doctor.checks.filter((c) => c.status === status).length;
  lines.push(
    '',
    `${count('pass')} passed, ${count('warn')} warnings, ${count('fail')} failed, ${count('skip')} skipped${doctor.ok ? '' : ' — fix the ✗ lines first, from the top'}`,
  );
  return `${lines.join('\n')}\n`;
}

/** A duration to the minute (TTLs and lifetimes: Vault backdates notBefore, lookups land a second short): "1h", "2d", "59m". */
export function roughDuration(seconds: number): string {
  return humanDuration(seconds >= 60 ? Math.round(seconds / 60) * 60_000 : seconds * 1000);
}
