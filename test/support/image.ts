/**
 * The product image, built from the Dockerfile with podman by scripts/install-image.sh before
 * vitest starts (`npm test`'s pretest), and podman run the way the scripts run it: CONTAINERS_CONF
 * pointing at scripts/image/containers.conf (runc, rlimits this machine allows).
 */
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { preparedPath } from './prepared.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

export const PODMAN_ENV = { ...process.env, CONTAINERS_CONF: path.join(ROOT, 'scripts/image/containers.conf') };

export interface ProductImage {
  /** localhost/vault-mtls-sidecar:<hash of its inputs> */
  readonly name: string;
  /** A docker-archive of it, for `ctr images import`. */
  readonly archive: string;
}

export function productImage(): ProductImage {
  const dir = preparedPath('image');
  return { name: readFileSync(path.join(dir, 'name'), 'utf8').trim(), archive: path.join(dir, 'image.tar') };
}

/** Runs podman and resolves with its stdout; rejects with its stderr in the message. */
export async function podman(args: string[]): Promise<string> {
  try {
    return (await run('podman', args, { env: PODMAN_ENV, maxBuffer: 64 * 1024 * 1024 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`podman ${args[0]}: ${e.stderr?.trim() || e.message}`);
  }
}

/** podman, and its exit code instead of a rejection (for the commands expected to fail). */
export function podmanStatus(args: string[]): { code: number; stderr: string } {
  try {
    execFileSync('podman', args, { env: PODMAN_ENV, stdio: ['ignore', 'ignore', 'pipe'] });
    return { code: 0, stderr: '' };
  } catch (err) {
    const e = err as { status?: number; stderr?: Buffer };
    return { code: e.status ?? -1, stderr: e.stderr?.toString() ?? '' };
  }
}

/** What /proc says about a process on this host: who it runs as, its capabilities, its root mount. */
export interface ProcessFacts {
  readonly uid: string;
  readonly gid: string;
  readonly capEff: string;
  readonly capBnd: string;
  readonly noNewPrivs: string;
  /** Its pid in each of its pid namespaces, outermost first: the last is the pid its container sees. */
  readonly nsPids: number[];
  readonly cmdline: string[];
  /** The options of the mount at / as the process sees it (ro or rw first). */
  readonly rootMountOptions: string;
}

export function processFacts(pid: number): ProcessFacts {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => status.match(new RegExp(`^${name}:\\s*(.*)$`, 'm'))?.[1]?.trim() ?? '';
  const rootMount = readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
    .split('\n')
    .map((line) => line.split(' '))
    .filter((fields) => fields[4] === '/')
    .pop();
  return {
    uid: field('Uid'),
    gid: field('Gid'),
    capEff: field('CapEff'),
    capBnd: field('CapBnd'),
    noNewPrivs: field('NoNewPrivs'),
    nsPids: field('NSpid').split(/\s+/).map(Number),
    cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean),
    rootMountOptions: rootMount?.[5] ?? '',
  };
}
