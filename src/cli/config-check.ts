/**
 * `vault-mtls-sidecar config check`: validate a configuration the way `run` would (file,
 * environment, flags) and print the effective result with defaults filled in, so an operator sees
 * what the sidecar will do before it does it. Secrets are never printed.
 */

import { stringify } from 'yaml';
import type { Argv } from 'yargs';
import { CONFIG_ENV, type Environment, loadConfig } from '../config/load.js';
import { formatHostPort, type HostPort } from '../config/parse.js';
import type { Config } from '../config/schema/index.js';
import { configFlags, type RunArgs, runOptions } from './run.js';

/** Fields whose values are credentials: shown as set or not, never as they are. */
const SECRET_FIELDS = new Set(['token', 'roleId']);

function isHostPort(value: object): value is HostPort {
  const keys = Object.keys(value);
  return keys.length === 2 && 'host' in value && 'port' in value;
}

/** The config as a user would write it: addresses as host:port, secrets redacted. */
export function printableConfig(value: unknown, key = ''): unknown {
  if (SECRET_FIELDS.has(key) && typeof value === 'string') return '<redacted>';
  if (Array.isArray(value)) return value.map((item) => printableConfig(item));
  if (value && typeof value === 'object') {
    if (isHostPort(value)) return formatHostPort(value);
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, child]) => child !== undefined)
        .map(([childKey, child]) => [childKey, printableConfig(child, childKey)]),
    );
  }
  return value;
}

export function configCheckOptions(yargs: Argv): Argv<RunArgs & { quiet?: boolean }> {
  return runOptions(yargs).option('quiet', { alias: 'q', type: 'boolean', describe: 'print nothing when the config is valid' });
}

export function configCheckCommand(
  args: RunArgs & { quiet?: boolean },
  env: Environment,
  out: NodeJS.WritableStream = process.stdout,
): number {
  const config: Config = loadConfig(args.config, env, configFlags(args));
  if (args.quiet) return 0;
  out.write(`# ${args.config ?? CONFIG_ENV}: valid. The effective configuration (defaults filled in, durations in seconds):\n`);
  out.write(stringify(printableConfig(config)));
  return 0;
}
