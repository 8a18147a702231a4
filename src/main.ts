#!/usr/bin/env -S node --max-semi-space-size=4
/**
 * The bin entry and the only place that exits the process.
 *
 * The runtime flag above is part of the product: V8's default 16 MB semi-spaces grow the young
 * generation to 32 MB under load (RSS the sidecar does not need) and, next to a ~13 MB old
 * generation, keep incremental marking running during large transfers. `npm run bench` and the
 * Docker image run the sidecar with the flags on this line.
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
  process.stderr.write(`✖ ${line}\n`);
  process.exit(1);
}
