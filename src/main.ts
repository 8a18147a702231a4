#!/usr/bin/env -S node --max-semi-space-size=8 --initial-heap-size=48
/**
 * The bin entry and the only place that exits the process.
 *
 * The runtime flags above are part of the product, chosen with `npm run bench`. V8's default
 * 16 MB semi-spaces grow the young generation to 32 MB under load, RSS the sidecar does not need
 * (4 MB promoted short-lived connection objects to the old generation, which then grew). And V8
 * sizes the first old generation limit from the small start-up heap, so with a ~13 MB old
 * generation a stream of socket buffers kept a full mark-compact running about every 100 ms (a
 * fifth of the CPU of a 1 MiB transfer); a 48 MB initial heap leaves them to the cheap young
 * collections. The bench and the Docker image run the sidecar with the flags on this line.
 */
import { runCli } from './cli/index.js';
import { formatError, isSidecarError } from './errors.js';

try {
  const code = await runCli(process.argv.slice(2), process.env);
  process.exit(code);
} catch (err) {
  // One line that says what is wrong and what to do, with a code to look up in the README.
  const line = isSidecarError(err)
    ? formatError(err)
    : `unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
  process.stderr.write(`${line.replace(/^/gm, '✖ ')}\n`);
  process.exit(1);
}
