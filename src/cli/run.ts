/** `vault-mtls-sidecar run`: the sidecar itself, configured from a file, the environment and flags. */
import type { Logger } from 'pino';
import type { Argv } from 'yargs';
import { type ConfigFlags, type Environment, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema/index.js';
import { IdleHeap } from '../memory/idle-heap.js';
import { Sidecar } from '../sidecar.js';
import { createLogger } from '../telemetry/logger.js';
import { serveUntilSignal } from './signals.js';

export interface RunArgs {
  config?: string;
  'vault-addr'?: string;
  'log-level'?: string;
  'admin-listen'?: string;
  'shutdown-delay'?: string;
}

export function runOptions(yargs: Argv): Argv<RunArgs> {
  return yargs
    .option('config', { alias: 'c', type: 'string', describe: 'YAML configuration file' })
    .option('vault-addr', { type: 'string', describe: "Vault's address (overrides VAULT_ADDR and vault.address)" })
    .option('log-level', {
      type: 'string',
      choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace'],
      describe: 'log level (overrides log.level)',
    })
    .option('admin-listen', { type: 'string', describe: 'admin server host:port (overrides admin.listen)' })
    .option('shutdown-delay', {
      type: 'string',
      describe: 'after SIGTERM, keep accepting this long before the drain, e.g. 5s (overrides shutdownDelay)',
    });
}

/** The flags that override the file, as run, doctor and config check all read them. */
export function configFlags(args: RunArgs): ConfigFlags {
  return {
    vaultAddr: args['vault-addr'],
    logLevel: args['log-level'],
    adminListen: args['admin-listen'],
    shutdownDelay: args['shutdown-delay'],
  };
}

export async function runCommand(args: RunArgs, env: Environment): Promise<number> {
  return (await startFromArgs(args, env)).serving;
}

/**
 * A started sidecar as `run` makes it (also the webhook's identity): config from the file, the
 * environment and the flags; signals handled; `serving` resolves with the exit code.
 */
export async function startFromArgs(
  args: RunArgs,
  env: Environment,
): Promise<{ sidecar: Sidecar; config: Config; logger: Logger; serving: Promise<number> }> {
  const config = loadConfig(args.config, env, configFlags(args));
  const logger = createLogger(config.log.level, undefined, config.log.format, process.stdout.isTTY === true);
  const sidecar = await Sidecar.create(config, logger);
  const serving = serveUntilSignal(sidecar, logger);
  try {
    await sidecar.start();
  } catch (err) {
    await sidecar.stop(0);
    throw err;
  }
  // A process-wide concern, so here and not in Sidecar (tests run many sidecars in one process).
  const idleHeap = new IdleHeap({ logger });
  idleHeap.start();
  void serving.finally(() => idleHeap.stop());
  return { sidecar, config, logger, serving };
}
