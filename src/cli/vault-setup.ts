/**
 * `vault-mtls-sidecar vault setup`: creates or updates what services' sidecars need in Vault
 * (src/vault/setup.ts), for one service from flags or every service in a file. VAULT_ADDR,
 * VAULT_TOKEN (a token that may mount engines and write policies) and VAULT_CACERT as for the
 * vault CLI. --dry-run prints the plan and writes nothing.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { Argv } from 'yargs';
import type { Environment } from '../config/load.js';
import { parseDurationSeconds } from '../config/parse.js';
import { ErrorCodes, formatError, SidecarError } from '../errors.js';
import { serviceNameProblems } from '../vault/names.js';

export interface VaultSetupArgs {
  service?: string;
  namespace: string;
  'service-account'?: string;
  file?: string;
  'root-mount': string;
  mount: string;
  'auth-mount': string;
  ttl: string;
  'max-ttl': string;
  'key-type': string;
  issue: boolean;
  'dry-run': boolean;
}

export function vaultSetupOptions(yargs: Argv): Argv<VaultSetupArgs> {
  return yargs
    .option('service', {
      type: 'string',
      describe: 'the service (its PKI and auth roles <service>.<namespace>, policy <service>.<namespace>-sidecar)',
    })
    .option('namespace', { type: 'string', default: 'default', describe: "the service's namespace" })
    .option('service-account', { type: 'string', describe: 'its service account (default: the service name)' })
    .option('file', { type: 'string', describe: 'YAML list of services: [{ name, namespace, serviceAccount? }]' })
    .option('root-mount', { type: 'string', default: 'pki', describe: 'PKI mount of the root CA' })
    .option('mount', { type: 'string', default: 'pki_int', describe: 'PKI mount of the intermediate that issues leaves' })
    .option('auth-mount', { type: 'string', default: 'kubernetes', describe: 'kubernetes auth mount' })
    .option('ttl', { type: 'string', default: '1h', describe: 'default certificate lifetime' })
    .option('max-ttl', { type: 'string', default: '24h', describe: 'longest certificate lifetime' })
    .option('key-type', { type: 'string', choices: ['ec', 'rsa'], default: 'ec', describe: 'key type the role accepts' })
    .option('issue', { type: 'boolean', default: false, describe: 'also allow issue (Vault makes the key); sign keeps it in the pod' })
    .option('dry-run', { type: 'boolean', default: false, describe: 'print the plan, write nothing' }) as Argv<VaultSetupArgs>;
}

const MARK = { create: '+', update: '~', unchanged: '=' } as const;

export async function vaultSetupCommand(
  args: VaultSetupArgs,
  env: Environment,
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  const { setupService } = await import('../vault/setup.js');
  const { findOldNames, oldNamesMessage } = await import('../vault/setup-old-names.js');
  const usage = (message: string): never => {
    throw new SidecarError(ErrorCodes.USAGE, `vault setup: ${message}`);
  };
  const address = env.VAULT_ADDR ?? usage('set VAULT_ADDR to the Vault to set up');
  const token = env.VAULT_TOKEN ?? usage('set VAULT_TOKEN to a token that may mount secrets engines and write policies');
  const caPem = env.VAULT_CACERT ? readFileSync(env.VAULT_CACERT, 'utf8') : undefined;
  const ttl = parseDurationSeconds(args.ttl) ?? usage(`--ttl "${args.ttl}" is not a duration such as 1h`);
  const maxTtl = parseDurationSeconds(args['max-ttl']) ?? usage(`--max-ttl "${args['max-ttl']}" is not a duration such as 24h`);
  const services = args.file
    ? servicesFromFile(args.file, usage)
    : [
        {
          name: args.service ?? usage('name a --service or a --file of services'),
          namespace: args.namespace,
          serviceAccount: args['service-account'],
        },
      ];
  const specs = services.map((service) => ({
    name: service.name,
    namespace: service.namespace,
    serviceAccount: service.serviceAccount ?? service.name,
    ttl,
    maxTtl,
    keyType: args['key-type'] as 'ec' | 'rsa',
    issue: args.issue,
  }));
  // Every name checked before anything is written: a bad third entry must not leave two done.
  const problems = specs.flatMap((spec, i) => serviceNameProblems(spec).map((p) => (args.file ? `${args.file}: entry ${i + 1}: ${p}` : p)));
  if (problems.length > 0) usage(problems.join('; '));
  for (const spec of specs) {
    const mounts = { root: args['root-mount'], intermediate: args.mount, auth: args['auth-mount'] };
    const steps = await setupService({ address, token, caPem }, spec, mounts, args['dry-run']);
    const old = await findOldNames({ address, token, caPem }, spec, mounts);
    out.write(
      `vault setup: ${spec.name} (${spec.namespace}/${spec.serviceAccount}) on ${address}${args['dry-run'] ? ' — dry run, nothing written' : ''}\n`,
    );
    for (const s of steps) out.write(`  ${MARK[s.action]} ${s.action.padEnd(9)} ${s.what}${s.detail ? ` (${s.detail})` : ''}\n`);
    for (const o of old) out.write(`  ! ${'old name'.padEnd(9)} ${o.path} (${o.serves}; left unchanged)\n`);
    const count = (a: string) => steps.filter((s) => s.action === a).length;
    out.write(
      `  ${count('create')} to create, ${count('update')} to update, ${count('unchanged')} unchanged${old.length ? `, ${old.length} old names to retire` : ''}\n`,
    );
    // A warning, not a failure: the old names still serve running pods, and the new ones are made.
    if (old.length > 0) err.write(`⚠ ${formatError(new SidecarError(ErrorCodes.VAULT_SETUP_OLD_NAMES, oldNamesMessage(spec, old)))}\n`);
  }
  return 0;
}

function servicesFromFile(file: string, usage: (m: string) => never): { name: string; namespace: string; serviceAccount?: string }[] {
  let list: unknown;
  try {
    list = parse(readFileSync(file, 'utf8'));
  } catch (err) {
    return usage(`cannot read ${file} (${(err as Error).message})`);
  }
  if (!Array.isArray(list)) return usage(`${file} must be a YAML list of { name, namespace, serviceAccount? }`);
  return list.map((entry, i) => {
    const e = entry as Record<string, unknown>;
    if (typeof e?.name !== 'string' || typeof e.namespace !== 'string') usage(`${file}: entry ${i + 1} needs name and namespace`);
    return {
      name: e.name as string,
      namespace: e.namespace as string,
      ...(typeof e.serviceAccount === 'string' ? { serviceAccount: e.serviceAccount } : {}),
    };
  });
}
