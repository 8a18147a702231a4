#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=50
/**
 * The bin entry and the only place that exits the process.
 *
 * The runtime flag above is part of the product, chosen on Node 24 with `npm run bench` (docs/benchmark.md
 * "Footprint"). V8's default 16 MB semi-spaces let the young generation grow to 32 MB and more
 * under load, RSS the sidecar does not need; 4 MB keeps http mode's CPU per request where 8 MB had
 * it (2 MB cost about 15% more CPU in http mode for a few MB less RSS). The former
 * `--initial-heap-size=48` is gone: with the bundled build the live heap is ~16 MB and tcp mode
 * reuses its read buffers, so full collections are rare without it, and it kept startup garbage
 * resident (+6 MB idle). The bench, the tests (test/support/cli.ts) and the Docker image run the
 * sidecar with the flags on this line.
 */
import { runCli } from './cli/index.js';
import { formatError, isSidecarError } from './errors.js';

try {
  const code = await runCli(process.argv.slice(2), process.env);
  process.exit(code);
} catch (err) {
  // One line that says what is wrong and what to do, with a code to look up in docs/troubleshooting.md.
  const line = isSidecarError(err)
    ? formatError(err)
    : `unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
  process.stderr.write(`${line.replace(/^/gm, '✖ ')}\n`);
  process.exit(1);
}
