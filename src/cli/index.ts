/** The command line: yargs commands, each returning the process exit code to main.ts. */
import yargs from 'yargs';
import type { Environment } from '../config/load.js';
import { ErrorCodes, SidecarError } from '../errors.js';
import { certInspectCommand, certInspectOptions } from './cert-inspect.js';
import { configCheckCommand, configCheckOptions } from './config-check.js';
import { demoCommand, demoOptions } from './demo.js';
import { doctorCommand, doctorOptions } from './doctor.js';
import { injectCommand, injectOptions } from './inject.js';
import { runCommand, runOptions } from './run.js';
import { vaultSetupCommand, vaultSetupOptions } from './vault-setup.js';
import { waitReadyCommand, waitReadyOptions } from './wait-ready.js';
import { webhookCommand, webhookOptions } from './webhook.js';

export async function runCli(argv: readonly string[], env: Environment): Promise<number> {
  let exitCode = 0;
  await yargs([...argv])
    .scriptName('vault-mtls-sidecar')
    .usage('$0 <command> [options]\n\nMutual TLS for any app, with short-lived certificates from Vault or OpenBao PKI.')
    .command(
      'run',
      'run the sidecar (inbound and outbound mTLS listeners, certificate renewal, admin server)',
      runOptions,
      async (args) => {
        exitCode = await runCommand(args, env);
      },
    )
    .command(
      'demo',
      'try it with no Vault: a dev CA, an echo app behind inbound mTLS, and curl commands to run',
      demoOptions,
      async (args) => {
        exitCode = await demoCommand(args);
      },
    )
    .command(
      'doctor',
      'check a setup end to end: config, Vault (reachable, clock, login, policy, role), certificate, trust and CRLs, ports, upstreams',
      doctorOptions,
      async (args) => {
        exitCode = await doctorCommand(args, env);
      },
    )
    .command(
      'inject [files..]',
      'add the sidecar to Kubernetes YAML where pod annotations ask for it (vault-mtls-sidecar/inject: "true"); --uninject removes it',
      injectOptions,
      async (args) => {
        exitCode = await injectCommand(args);
      },
    )
    .command(
      'webhook',
      'run the mutating admission webhook that adds the sidecar to annotated pods (its certificate from the configured identity source)',
      webhookOptions,
      async (args) => {
        exitCode = await webhookCommand(args, env);
      },
    )
    .command(
      'wait-ready',
      "wait until the sidecar's /readyz answers 200 (a classic sidecar container's postStart hook, to hold the app until the sidecar is ready)",
      waitReadyOptions,
      async (args) => {
        exitCode = await waitReadyCommand(args);
      },
    )
    .command('vault', "set up Vault for services' sidecars", (vault) =>
      vault
        .command(
          'setup',
          'create or update, idempotently, the PKI root and intermediate, each service’s role and policy, its kubernetes auth role (audience vault) and auto-tidy; --dry-run prints the plan',
          vaultSetupOptions,
          async (args) => {
            exitCode = await vaultSetupCommand(args, env);
          },
        )
        .demandCommand(1, 'name an action: vault setup'),
    )
    .command('config', 'check a configuration file and print the effective configuration (secrets redacted)', (config) =>
      config
        .command(
          'check',
          'validate the file, the environment and the flags as run would, and print the result',
          configCheckOptions,
          (args) => {
            exitCode = configCheckCommand(args, env);
          },
        )
        .demandCommand(1, 'name an action: config check'),
    )
    .command('cert', 'inspect certificates: files (PEM, PKCS#12) or what an endpoint presents', (cert) =>
      cert
        .command(
          'inspect [file]',
          'show names, SPIFFE ID, issuer chain, validity, key, usages and fingerprints',
          certInspectOptions,
          async (args) => {
            exitCode = await certInspectCommand(args);
          },
        )
        .demandCommand(1, 'name an action: cert inspect'),
    )
    .demandCommand(1, 'name a command: run, doctor, demo, inject, webhook, wait-ready, vault setup, config check or cert inspect')
    .strict()
    .help()
    .alias('h', 'help')
    .version()
    .alias('v', 'version')
    .fail((message, err) => {
      if (err) throw err;
      throw new SidecarError(ErrorCodes.USAGE, `${message}; see vault-mtls-sidecar --help`);
    })
    .parseAsync();
  return exitCode;
}
