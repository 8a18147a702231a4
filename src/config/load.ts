/**
 * Builds the one immutable Config from a YAML file, the environment (Vault's own variables) and
 * command-line flags, in that order of precedence: flags > environment > file. This is the only
 * module that looks at environment values, and it receives them as an argument.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ErrorCodes, SidecarError } from '../errors.js';
import { describeIssues } from './problems.js';
import { type Config, configSchema, type ParsedConfig } from './schema/index.js';
import { validateConfig } from './validate.js';

/** Flags that override the file (see cli/run.ts). */
export interface ConfigFlags {
  vaultAddr?: string;
  logLevel?: string;
  adminListen?: string;
  /** A duration as the file writes it ("5s"): a classic-container pod sets it, a native sidecar not. */
  shutdownDelay?: string;
}

export type Environment = Readonly<Record<string, string | undefined>>;

/**
 * The environment variable that carries the whole configuration as YAML when no --config is given:
 * what `inject` and the webhook write into the sidecar container, so a pod needs no ConfigMap.
 */
export const CONFIG_ENV = 'VAULT_MTLS_SIDECAR_CONFIG';

export function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new SidecarError(ErrorCodes.CONFIG_FILE_UNREADABLE, `config: cannot read ${path} (${reason}); check the --config path`, {
      cause: err,
    });
  }
  return parseConfigText(text, path);
}

function parseConfigText(text: string, path: string): unknown {
  try {
    return parseYaml(text) ?? {};
  } catch (err) {
    const where = (err as { linePos?: [{ line: number; col: number }] }).linePos?.[0];
    const at = where ? ` at line ${where.line}, column ${where.col}` : '';
    throw new SidecarError(ErrorCodes.CONFIG_INVALID, `config: ${path} is not valid YAML${at}; fix the syntax`, {
      cause: err,
    });
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Applies environment and flags onto the raw file content, before schema validation. */
function overlay(raw: unknown, env: Environment, flags: ConfigFlags): unknown {
  if (!isRecord(raw)) return raw;
  const merged: Record<string, unknown> = { ...raw };
  const identity = isRecord(merged.identity) ? merged.identity : undefined;
  const vaultInFile = isRecord(merged.vault) ? { ...merged.vault } : undefined;
  const usesVault = (identity?.source ?? 'vault') === 'vault';
  if (vaultInFile || usesVault) {
    const vault: Record<string, unknown> = vaultInFile ?? {};
    const address = flags.vaultAddr ?? env.VAULT_ADDR;
    if (address) vault.address = address;
    if (env.VAULT_NAMESPACE) vault.namespace = env.VAULT_NAMESPACE;
    if (env.VAULT_CACERT) vault.caCert = env.VAULT_CACERT;
    if (env.VAULT_SKIP_VERIFY) vault.skipVerify = /^(1|true|yes)$/i.test(env.VAULT_SKIP_VERIFY);
    merged.vault = vault;
  }
  if (flags.logLevel) merged.log = { ...(isRecord(merged.log) ? merged.log : {}), level: flags.logLevel };
  if (flags.adminListen) merged.admin = { ...(isRecord(merged.admin) ? merged.admin : {}), listen: flags.adminListen };
  if (flags.shutdownDelay) merged.shutdownDelay = flags.shutdownDelay;
  return merged;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

export function buildConfig(raw: unknown, env: Environment, flags: ConfigFlags = {}): Config {
  // reportInput: the messages say what was found, not only what was expected.
  const result = configSchema.safeParse(overlay(raw, env, flags), { reportInput: true });
  if (!result.success) {
    throw new SidecarError(ErrorCodes.CONFIG_INVALID, describeIssues(result.error.issues, configSchema).join('\n'), {
      cause: result.error,
    });
  }
  const parsed = result.data;
  const config: ParsedConfig = {
    ...parsed,
    vault: parsed.vault ? { ...parsed.vault, address: parsed.vault.address ?? '', token: env.VAULT_TOKEN || undefined } : undefined,
  };
  const problems = validateConfig(config);
  if (problems.length > 0) throw new SidecarError(ErrorCodes.CONFIG_INVALID, problems.join('\n'));
  // validateConfig checked what the types now say: identity has its source's shape (files for
  // files, a commonName otherwise), and vault is there for source vault.
  return deepFreeze(config as Config);
}

export function loadConfig(path: string | undefined, env: Environment, flags: ConfigFlags = {}): Config {
  if (!path) {
    const inline = env[CONFIG_ENV];
    if (inline) return buildConfig(parseConfigText(inline, CONFIG_ENV), env, flags);
    throw new SidecarError(ErrorCodes.CONFIG_INVALID, `config: no configuration; pass --config <file.yaml> or set ${CONFIG_ENV}`);
  }
  return buildConfig(readConfigFile(path), env, flags);
}
