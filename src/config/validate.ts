/**
 * Cross-field checks the schema cannot express. Each is a small function whose messages name the
 * field and say what to do (ghostunnel's validate*() style); every problem is reported.
 */
import tls from 'node:tls';
import { formatHostPort } from './parse.js';
import type { ParsedConfig as Config } from './schema/index.js';

type Report = (message: string) => void;

function validateVault(config: Config, fail: Report): void {
  if (config.identity.source !== 'vault') return;
  const vault = config.vault;
  if (!vault) {
    fail('vault: is required when identity.source is vault');
    return;
  }
  if (!vault.address) {
    fail('vault.address: no Vault address; set vault.address, the VAULT_ADDR environment variable or --vault-addr');
  }
  const auth = vault.auth;
  if (auth.method === 'token' && !auth.tokenFile && !vault.token) {
    fail('vault.auth: token auth needs a token; set VAULT_TOKEN or vault.auth.tokenFile');
  }
  if (auth.method === 'approle') {
    if (!auth.roleId && !auth.roleIdFile) fail('vault.auth.roleIdFile: approle auth needs roleId or roleIdFile');
    if (!auth.secretIdFile) fail('vault.auth.secretIdFile: approle auth needs secretIdFile');
  }
}

function validateIdentity(config: Config, fail: Report): void {
  const { source, commonName, files } = config.identity;
  if (source === 'files' && !files) fail('identity.files: source files needs files.cert, files.key and files.ca (or files.pkcs12)');
  if (source !== 'files' && files) fail(`identity.files: only used with identity.source files (it is ${source})`);
  if (source !== 'files' && !commonName) fail(`identity.commonName: is required for identity.source ${source}`);
}

function validateListeners(config: Config, fail: Report): void {
  const names = new Set<string>();
  const addresses = new Set<string>([formatHostPort(config.admin.listen)]);
  const all = [
    ...config.inbound.map((l, i) => ({ l, field: `inbound[${i}]` })),
    ...config.outbound.map((l, i) => ({ l, field: `outbound[${i}]` })),
  ];
  for (const { l, field } of all) {
    if (names.has(l.name)) fail(`${field}.name: "${l.name}" is used by another listener; names must be unique`);
    names.add(l.name);
    const address = formatHostPort(l.listen);
    // Port 0 asks the OS for a free port, so two such listeners never collide.
    if (l.listen.port !== 0 && addresses.has(address))
      fail(`${field}.listen: ${address} is already used by another listener or admin.listen`);
    addresses.add(address);
  }
}

/**
 * tcp mode has no request: a rule's methods and paths cannot be checked there, and a rule relying
 * on them would admit peers its author meant to narrow.
 */
function validateAuthorization(config: Config, fail: Report): void {
  for (const [i, listener] of config.inbound.entries()) {
    if (listener.mode !== 'tcp' || !listener.authorization) continue;
    for (const [r, rule] of listener.authorization.allow.entries()) {
      for (const field of ['paths', 'methods'] as const) {
        if (rule[field] === undefined) continue;
        fail(
          `inbound[${i}].authorization.allow[${r}].${field}: tcp mode has no requests, so ${field} cannot be checked; remove it or use mode http or h2`,
        );
      }
    }
  }
}

function validateRenewal(config: Config, fail: Report): void {
  const { minBackoff, maxBackoff, windowStart, windowEnd } = config.identity.renewal;
  if (windowStart > windowEnd) fail('identity.renewal.windowStart: must not exceed identity.renewal.windowEnd');
  if (minBackoff > maxBackoff) fail('identity.renewal.minBackoff: must not exceed identity.renewal.maxBackoff');
  if (config.identity.ttl < 10) fail('identity.ttl: must be at least 10s so renewal has time to happen');
}

function validateLimits(config: Config, fail: Report): void {
  const all = [
    ...config.inbound.map((l, i) => ({ l, field: `inbound[${i}]` })),
    ...config.outbound.map((l, i) => ({ l, field: `outbound[${i}]` })),
  ];
  for (const { l, field } of all) {
    // Node refuses a header timeout longer than the whole-request timeout.
    if (l.limits.headersTimeout > l.limits.requestTimeout)
      fail(`${field}.limits.headersTimeout: must not exceed ${field}.limits.requestTimeout (${l.limits.requestTimeout}s)`);
  }
}

function validateTls(config: Config, fail: Report): void {
  const { ciphers } = config.tls;
  if (!ciphers) return;
  try {
    tls.createSecureContext({ ciphers });
  } catch {
    fail(`tls.ciphers: OpenSSL accepts none of "${ciphers}"; give an OpenSSL cipher list such as ECDHE-ECDSA-AES128-GCM-SHA256`);
  }
}

/** Every cross-field problem, one line each (`config: <field>: …`); empty when there is none. */
export function validateConfig(config: Config): string[] {
  const problems: string[] = [];
  const report: Report = (message) => problems.push(`config: ${message}`);
  for (const validate of [
    validateLimits,
    validateTls,
    validateIdentity,
    validateVault,
    validateListeners,
    validateAuthorization,
    validateRenewal,
  ]) {
    validate(config, report);
  }
  return problems;
}
