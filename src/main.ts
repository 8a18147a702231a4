#!/usr/bin/env node
/** The bin entry and the only place that exits the process. */
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
