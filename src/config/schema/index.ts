/**
 * The shape of the configuration file, with its defaults. zod gives us field paths in errors and
 * the typed, parsed result; strict objects everywhere so a misspelt field is an error, not a no-op.
 * zod/mini, not zod: the same validation and issues, tree-shaken — the full build's classes and
 * methods cost every running sidecar ~6 MB of RSS for a file it reads at start-up (docs/benchmark.md "Footprint").
 */

import * as z from 'zod/mini';
import { duration, hostPort } from './fields.js';
import { identitySection } from './identity.js';
import { inboundListener, outboundListener } from './listeners.js';
import { vaultSection } from './vault.js';

export { IDENTITY_FIELDS } from './authorization.js';

export const configSchema = z.strictObject({
  vault: z.optional(vaultSection),
  identity: identitySection,
  inbound: z._default(z.array(inboundListener), []),
  outbound: z._default(z.array(outboundListener), []),
  admin: z._default(
    z.strictObject({
      listen: z._default(hostPort, { host: '127.0.0.1', port: 15000 }),
      /**
       * /readyz stays ready while Vault is down as long as the certificate has at least this much
       * validity left; below it the pod leaves the Service before peers start failing handshakes.
       */
      readyMinValidity: z._default(duration, 10),
      /** POST /rotate (loopback callers only) is refused with 429 sooner than this after the last one. */
      rotateMinInterval: z._default(duration, 10),
    }),
    { listen: { host: '127.0.0.1', port: 15000 }, readyMinValidity: 10, rotateMinInterval: 10 },
  ),
  /** TLS policy for every listener and outbound dial. */
  tls: z._default(
    z.strictObject({
      /**
       * intermediate (Mozilla's profile): TLS 1.2 with ECDHE and AEAD suites, and TLS 1.3.
       * modern: TLS 1.3 only.
       */
      profile: z._default(z.enum(['intermediate', 'modern']), 'intermediate'),
      /** An OpenSSL cipher list for TLS 1.2, replacing the profile's (TLS 1.3 suites are not affected). */
      ciphers: z.optional(z.string().check(z.minLength(1))),
    }),
    { profile: 'intermediate' },
  ),
  log: z._default(
    z.strictObject({
      level: z._default(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']), 'info'),
      /** auto: human-readable on a terminal, JSON lines otherwise. */
      format: z._default(z.enum(['auto', 'json', 'pretty']), 'auto'),
    }),
    { level: 'info', format: 'auto' },
  ),
  /** How long to wait for the first certificate before giving up at start-up. */
  startupTimeout: z._default(duration, 60),
  /**
   * After SIGTERM, how long the listeners keep accepting (with /readyz already 503) before the
   * drain: endpoints take a few seconds to drop the pod, and peers keep dialling it until then.
   */
  shutdownDelay: z._default(duration, 0),
  /** How long SIGTERM waits for in-flight requests before closing connections. */
  drainTimeout: z._default(duration, 20),
});

export type ConfigInput = z.input<typeof configSchema>;
type Parsed = z.output<typeof configSchema>;
export type InboundListenerConfig = Parsed['inbound'][number];
export type AuthorizationConfig = NonNullable<InboundListenerConfig['authorization']>;
export type OutboundListenerConfig = Parsed['outbound'][number];
type ParsedIdentity = Parsed['identity'];
type IdentityBase = Omit<ParsedIdentity, 'source' | 'files' | 'commonName'>;
/** identity for source files: the certificate names itself (commonName unused). */
export type FilesIdentityConfig = IdentityBase & { source: 'files'; files: NonNullable<ParsedIdentity['files']>; commonName?: string };
/** identity for sources that issue a certificate (vault, dev): it needs a name, never files. */
export type IssuedIdentityConfig = IdentityBase & { source: 'vault' | 'dev'; commonName: string; files?: undefined };
/** identity after validateConfig: one shape per source, so no consumer checks what validation did. */
export type IdentityConfig = FilesIdentityConfig | IssuedIdentityConfig;
export type VaultAuthConfig = NonNullable<Parsed['vault']>['auth'];

/** Vault settings after env defaults are applied: address is known and the token (if any) resolved. */
export type VaultConfig = Omit<NonNullable<Parsed['vault']>, 'address'> & {
  address: string;
  /** From VAULT_TOKEN; never logged. */
  token?: string;
};

/** The config as the schema parsed it, before the cross-field checks (validate.ts). */
export type ParsedConfig = Omit<Parsed, 'vault'> & { vault?: VaultConfig };

/** A config that passed validateConfig: identity narrowed per source (usesVault narrows vault too). */
export type Config = Omit<ParsedConfig, 'identity'> & { identity: IdentityConfig };

/** A config whose certificates come from Vault: validateConfig made sure vault is there. */
export type VaultBackedConfig = Config & { identity: IssuedIdentityConfig & { source: 'vault' }; vault: VaultConfig };

export function usesVault(config: Config): config is VaultBackedConfig {
  return config.identity.source === 'vault' && config.vault !== undefined;
}
