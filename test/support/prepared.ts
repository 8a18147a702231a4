/**
 * The servers `npm test` builds before vitest starts (scripts/prepare-tests.sh, the `pretest`
 * script). Tests only look them up: a test hook never builds one inside its timeout. Run vitest
 * by hand only after one `npm test` (or `scripts/prepare-tests.sh`) on the machine.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** Runs scripts/install-NAME.sh with CACHED_ONLY=1 and returns the path it prints last. */
export function preparedPath(name: 'openbao' | 'kubernetes' | 'helm' | 'image' | 'kubelet' | 'grpc-peer'): string {
  const script = path.join(ROOT, `scripts/install-${name}.sh`);
  try {
    const out = execFileSync(script, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CACHED_ONLY: '1' } });
    const last = out.toString().trim().split('\n').pop();
    if (!last) throw new Error('it printed no path');
    return last;
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(
      `${name} is not built on this machine (${stderr || (err as Error).message}): run npm test, or scripts/prepare-tests.sh, once`,
    );
  }
}
