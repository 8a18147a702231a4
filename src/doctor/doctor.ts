/**
 * `vault-mtls-sidecar doctor`: every check from the config to the upstreams, in the order a setup
 * is built — config → identity (Vault or files) → TLS → listeners → upstreams. A check whose
 * input failed is skipped, so the first ✗ is the one to fix.
 */
import { CONFIG_ENV, type ConfigFlags, type Environment, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema/index.js';
import { errorMessage } from '../errors.js';
import { fileChecks } from './file-checks.js';
import { contextsFor, outboundChecks, portChecks, selfHandshake } from './network-checks.js';
import { type CheckResult, type DoctorReport, fail, pass, report, warn } from './report.js';
import { vaultChecks } from './vault-checks.js';

export async function runDoctor(configPath: string | undefined, env: Environment, overrides: ConfigFlags = {}): Promise<DoctorReport> {
  let config: Config;
  try {
    config = loadConfig(configPath, env, overrides);
  } catch (err) {
    return report([fail('config', errorMessage(err), 'run vault-mtls-sidecar config check for every problem, one per line')]);
  }
  const checks: CheckResult[] = [
    pass(
      'config',
      `${configPath ?? CONFIG_ENV}: valid; identity from ${config.identity.source}, ${config.inbound.length} inbound and ${config.outbound.length} outbound listener(s)`,
    ),
  ];
  const identity =
    config.identity.source === 'vault'
      ? await vaultChecks(config)
      : config.identity.source === 'files'
        ? await fileChecks(config)
        : {
            checks: [
              warn('identity', 'identity.source is dev: an in-memory CA no other pod trusts', 'use source vault or files outside a demo'),
            ],
          };
  checks.push(...identity.checks);
  const bundle = 'bundle' in identity ? identity.bundle : undefined;
  const trust = 'trust' in identity ? identity.trust : undefined;
  const contexts = contextsFor(config, bundle, trust);
  if (config.identity.source !== 'dev') checks.push(await selfHandshake(contexts));
  checks.push(...(await portChecks(config)));
  checks.push(...(await outboundChecks(config, contexts)));
  return report(checks);
}
