/** `vault-mtls-sidecar doctor`: check a setup end to end and say what to fix (see src/doctor/). */
import type { Argv } from 'yargs';
import { CONFIG_ENV, type Environment } from '../config/load.js';
import { configFlags, type RunArgs, runOptions } from './run.js';

export type DoctorArgs = RunArgs & { output?: string };

export function doctorOptions(yargs: Argv): Argv<DoctorArgs> {
  return runOptions(yargs).option('output', {
    alias: 'o',
    choices: ['text', 'json'],
    default: 'text',
    describe: 'text: a table with the fix under each ✗ and !; json: for scripts',
  });
}

/** Exit status 1 when any check failed (✗), 0 otherwise (warnings included). */
export async function doctorCommand(args: DoctorArgs, env: Environment, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  // Loaded on use: `run` must not pay for doctor's modules (node-vault among them) in its memory.
  const { runDoctor } = await import('../doctor/doctor.js');
  const { formatReport } = await import('../doctor/report.js');
  // Without --config, the configuration an injected sidecar carries in its environment.
  const found = await runDoctor(args.config, env, configFlags(args));
  out.write(
    args.output === 'json'
      ? `${JSON.stringify(found, null, 2)}\n`
      : formatReport(found, `vault-mtls-sidecar doctor: ${args.config ?? CONFIG_ENV}`),
  );
  return found.ok ? 0 : 1;
}
