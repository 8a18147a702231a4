/**
 * A mode loads only what it runs: every loaded module stays in the heap for good (RSS and GC
 * marking work per pod). tcp mode must not load node:http2 (http2 and its ten internal modules,
 * −0.5–0.9 MB idle RSS): it did, through a value import in h2/idle-connections.ts that the
 * connection gate and the certificate deadlines pulled in (found by an outside review). The built
 * bundle's tcp chunks are imported in a fresh node and its loaded native modules read.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { MAIN } from '../support/cli.js';

const DIST = path.dirname(MAIN);

function loadedBy(chunks: RegExp): string[] {
  const files = readdirSync(DIST).filter((f) => chunks.test(f));
  expect(files.length).toBeGreaterThan(0);
  const script = `for (const f of ${JSON.stringify(files)}) await import(${JSON.stringify(`${DIST}/`)} + f);
console.log(JSON.stringify(process.moduleLoadList.filter((m) => m.startsWith('NativeModule '))));`;
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as string[];
}

it('tcp mode, inbound and outbound, does not load node:http2', () => {
  const loaded = loadedBy(/^(inbound|outbound)-tcp-.*\.js$/);
  expect(loaded).toContain('NativeModule tls');
  expect(loaded.filter((m) => m.includes('http2'))).toEqual([]);
});

it('h2 mode does (the check can fail)', () => {
  expect(loadedBy(/^(inbound|outbound)-h2-.*\.js$/)).toContain('NativeModule http2');
});
