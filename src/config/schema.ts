/**
 * The shape of the configuration file, with its defaults. zod gives us field paths in errors and
 * the typed, parsed result; strict objects everywhere so a misspelt field is an error, not a no-op.
 * zod/mini, not zod: the same validation and issues, tree-shaken — the full build's classes and
 * methods cost every running sidecar ~6 MB of RSS for a file it reads at start-up (README "Footprint").
 */

import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import { type HostPort, parseDurationSeconds, parseHostPort } from './parse.js';

// English messages for the checks whose issues we do not word ourselves (problems.ts).
z.config(en());

const duration = z.pipe(
  z.union([z.string(), z.number()]),
  z.transform((value, ctx): number => {
    const seconds = parseDurationSeconds(value);
    if (seconds === undefined) {
      ctx.issues.push({ code: 'custom', message: `"${value}" is not a duration; use e.g. 90s, 15m or 1h`, input: value });
      return z.NEVER;
    }
    return seconds;
  }),
);

const hostPort = z.pipe(
  z.string(),
  z.transform((value, ctx): HostPort => {
    const parsed = parseHostPort(value);
    if (!parsed) {
      ctx.issues.push({ code: 'custom', message: `"${value}" is not host:port; use e.g. 127.0.0.1:8080 or [::1]:8443`, input: value });
      return z.NEVER;
    }
    return parsed;
  }),
);

const listenerName = z.string().check(z.regex(/^[a-z0-9][a-z0-9_-]*$/, 'use lowercase letters, digits, - and _'));

const tokenAuth = z.strictObject({
  method: z.literal('token'),
  /** A file holding the token; otherwise VAULT_TOKEN. */
  tokenFile: z.optional(z.string()),
});

const approleAuth = z.strictObject({
  method: z.literal('approle'),
  mount: z._default(z.string(), 'approle'),
  roleId: z.optional(z.string()),
  roleIdFile: z.optional(z.string()),
  secretIdFile: z.optional(z.string()),
});

/** Kubernetes service-account token login; the file is re-read at every login because the kubelet rotates it. */
const kubernetesAuth = z.strictObject({
  method: z.literal('kubernetes'),
  mount: z._default(z.string(), 'kubernetes'),
  role: z.string().check(z.minLength(1)),
  tokenFile: z._default(z.string(), '/var/run/secrets/kubernetes.io/serviceaccount/token'),
});

/** A JWT (for example the same projected service-account token) through Vault's jwt auth method. */
const jwtAuth = z.strictObject({
  method: z.literal('jwt'),
  mount: z._default(z.string(), 'jwt'),
  role: z.string().check(z.minLength(1)),
  tokenFile: z.string().check(z.minLength(1)),
});

/** scheme://host[:port] and nothing else (a trailing / is fine). */
function isOrigin(value: string): boolean {
  if (!URL.canParse(value)) return false;
  const url = new URL(value);
  return /^https?:$/.test(url.protocol) && url.pathname === '/' && !url.search && !url.hash && !url.username && !url.password;
}

const vaultSection = z.strictObject({
  /** Vault's address; VAULT_ADDR when unset. A scheme is required: `vault.svc:8200` parses as a URL whose scheme is `vault.svc:`. */
  address: z.optional(
    z.string().check(
      z.refine((value) => /^https?:\/\/[^/\s]+/i.test(value) && URL.canParse(value), {
        error: (issue) =>
          `expected an http:// or https:// URL such as https://vault.svc:8200, found ${JSON.stringify(issue.input)} (from vault.address, VAULT_ADDR or --vault-addr)`,
      }),
    ),
  ),
  namespace: z.optional(z.string()),
  /** PEM file of the CA that signed Vault's own TLS certificate; VAULT_CACERT when unset. */
  caCert: z.optional(z.string()),
  skipVerify: z._default(z.boolean(), false),
  requestTimeout: z._default(duration, 10),
  /**
   * Other origins (scheme://host:port) a Vault redirect may lead to, such as each HA node's
   * api_addr. The token and login credentials go only to vault.address's origin and these: a
   * redirect anywhere else is refused (SIDECAR_VAULT_REDIRECT_REFUSED).
   */
  redirectOrigins: z._default(
    z.array(
      z.string().check(
        z.refine((value) => isOrigin(value), {
          error: (issue) =>
            `expected an origin such as https://vault-1.vault-internal:8200 (scheme, host and port only), found ${JSON.stringify(issue.input)}`,
        }),
      ),
    ),
    [],
  ),
  auth: z._default(z.discriminatedUnion('method', [tokenAuth, approleAuth, kubernetesAuth, jwtAuth]), { method: 'token' }),
  /** On a clean shutdown, revoke the last certificate (proving it with its key) and/or the Vault token. */
  revokeOnShutdown: z._default(z.strictObject({ certificate: z._default(z.boolean(), false), token: z._default(z.boolean(), false) }), {
    certificate: false,
    token: false,
  }),
  pki: z.strictObject({
    mount: z._default(z.string(), 'pki'),
    role: z.string().check(z.minLength(1)),
    /**
     * How often the mount's issuers (trust bundle) and CRLs are fetched again (±10 % jitter): a
     * revocation reaches this sidecar within this long. Reads are conditional (If-Modified-Since).
     */
    refreshInterval: z._default(duration, 1800),
    /**
     * How often the mount's issuer list is checked (one LIST call, ±10 % jitter). A new issuer is
     * fetched at once, and this sidecar moves onto a new issuer only after trusting it for twice
     * this long (plus the jitter), so its peers (checking as often) trust it first: an issuer
     * rotation fails no handshake. Shorter costs Vault more; longer delays the move to a new issuer.
     */
    issuerCheckInterval: z._default(duration, 300),
    /**
     * CRL enforcement on inbound and outbound handshakes. soft: when the CRL cannot be refreshed
     * past its nextUpdate, stop checking it (and say so); closed: keep it, so handshakes fail and
     * the sidecar is not ready; off: no CRL.
     */
    crl: z._default(z.enum(['soft', 'closed', 'off']), 'soft'),
    /**
     * sign (default): the key pair is made in the pod and Vault signs a CSR (<mount>/sign/<role>),
     * so the private key never crosses the network. issue: Vault makes the key and sends it
     * (<mount>/issue/<role>).
     */
    method: z._default(z.enum(['sign', 'issue']), 'sign'),
  }),
});

/**
 * Whether a peer's leaf may be signed by an intermediate the peer sends (chaining to a CA of
 * identity.files.ca) rather than by a CA of that file itself. Off by default: any CA:TRUE
 * certificate under the CA could then mint every identity. For CAs whose intermediates are not
 * known in advance; otherwise list the intermediates in the ca file.
 */
const peerIntermediates = z._default(z.boolean(), false);

const pemFiles = z.strictObject({
  cert: z.string().check(z.minLength(1)),
  key: z.string().check(z.minLength(1)),
  ca: z.string().check(z.minLength(1)),
  /** Fallback check for changed files where the filesystem sends no change events. */
  pollInterval: z._default(duration, 10),
  peerIntermediates,
});

const pkcs12File = z.strictObject({
  pkcs12: z.string().check(z.minLength(1)),
  passwordFile: z.optional(z.string()),
  /** CA certificates peers must chain to; the last certificate in the bundle when unset. */
  ca: z.optional(z.string()),
  pollInterval: z._default(duration, 10),
  peerIntermediates,
});

const identitySection = z.strictObject({
  source: z._default(z.enum(['vault', 'dev', 'files']), 'vault'),
  /** For source files: where the certificate, key and CA are (PEM), or a PKCS#12 bundle. */
  files: z.optional(z.union([pemFiles, pkcs12File])),
  /** Required for vault and dev; for files, the certificate carries its own names. */
  commonName: z.optional(z.string().check(z.minLength(1))),
  dnsNames: z._default(z.array(z.string().check(z.minLength(1))), []),
  ipSans: z._default(z.array(z.string().check(z.minLength(1))), []),
  uriSans: z._default(z.array(z.url()), []),
  ttl: z._default(duration, 3600),
  /** The key pair made in the pod for vault.pki.method sign. */
  keyType: z._default(z.enum(['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096']), 'ec-p256'),
  renewal: z._default(
    z.strictObject({
      /** Renew at a random point between these fractions of the lifetime, so a fleet does not renew in step. */
      windowStart: z._default(z.number().check(z.gt(0), z.lt(1)), 0.5),
      windowEnd: z._default(z.number().check(z.gt(0), z.lt(1)), 0.7),
      /** Validity to keep in hand for a Vault outage: never renew later than notAfter minus this. */
      outageBudget: z._default(duration, 120),
      /** First retry delay after a failed renewal; doubles (with full jitter) up to maxBackoff. */
      minBackoff: z._default(duration, 1),
      maxBackoff: z._default(duration, 60),
    }),
    { windowStart: 0.5, windowEnd: 0.7, outageBudget: 120, minBackoff: 1, maxBackoff: 60 },
  ),
});

/** The fields of an allow rule that match the peer's certificate; every rule names one. */
export const IDENTITY_FIELDS = ['spiffe', 'uri', 'dns', 'cn', 'ou'] as const;

const NON_EMPTY = 'must not be empty; omit the field to allow every method or path';

/**
 * One allow rule: every identity field given must match the peer (any of its values); `*` matches
 * one segment (between `/` in URIs, `.` in DNS names), `**` anything. Methods and path prefixes
 * (http mode only) narrow the rule further.
 */
const allowRule = z
  .strictObject({
    spiffe: z.optional(z.string().check(z.minLength(1))),
    uri: z.optional(z.string().check(z.minLength(1))),
    dns: z.optional(z.string().check(z.minLength(1))),
    cn: z.optional(z.string().check(z.minLength(1))),
    ou: z.optional(z.string().check(z.minLength(1))),
    // An empty list reads as "any method/path" to some and "none" to others: omit the field instead.
    methods: z.optional(z.array(z.string().check(z.minLength(1), z.toUpperCase())).check(z.minLength(1, NON_EMPTY))),
    paths: z.optional(
      z
        .array(
          z.string().check(
            z.startsWith('/'),
            // Requests are matched on their normalized path, so a rule that is not normalized could never match.
            z.refine(
              (path) => !/\/\/|\/\.\.?(\/|$)|[?#;\\]/.test(path),
              'write the path normalized, as requests are matched: no //, no . or .. segments, no ? # ; or \\',
            ),
          ),
        )
        .check(z.minLength(1, NON_EMPTY)),
    ),
  })
  // A rule matches the peers its identity fields match; with none, every peer the CA trusts (tcp
  // mode, which has no request to narrow it, let everyone in through a paths-only rule).
  .check(
    z.refine(
      (rule) => IDENTITY_FIELDS.some((field) => rule[field] !== undefined),
      'name the peer with spiffe, uri, dns, cn or ou: a rule without one matches every peer the CA trusts (omit authorization to allow them all)',
    ),
  )
  // Both match URI SANs; a rule naming both would silently test only one.
  .check(z.refine((rule) => !(rule.spiffe && rule.uri), 'spiffe and uri both match URI SANs; give one of them per rule'));

/** Per-listener limits, so one slow or greedy client cannot harm the others. */
const LIMIT_DEFAULTS = {
  connectTimeout: 5,
  idleTimeout: 120,
  handshakeTimeout: 10,
  headersTimeout: 10,
  requestTimeout: 300,
  bodyIdleTimeout: 30,
  maxConnections: 1024,
  maxPendingHandshakes: 512,
  maxConcurrentStreams: 128,
};
const limits = z._default(
  z.strictObject({
    /** Dialling the app (inbound) or the upstream (outbound), including the TLS handshake. */
    connectTimeout: z._default(duration, LIMIT_DEFAULTS.connectTimeout),
    /** A connection with no traffic for this long is closed. */
    idleTimeout: z._default(duration, LIMIT_DEFAULTS.idleTimeout),
    /** A client must complete its TLS handshake within this (silent sockets). */
    handshakeTimeout: z._default(duration, LIMIT_DEFAULTS.handshakeTimeout),
    /** A client must send its complete request headers within this (slow-header attacks). */
    headersTimeout: z._default(duration, LIMIT_DEFAULTS.headersTimeout),
    /** A client must send its whole request, body included, within this (http mode). */
    requestTimeout: z._default(duration, LIMIT_DEFAULTS.requestTimeout),
    /** Silence allowed while a request body is arriving (slow-body attacks; http mode). */
    bodyIdleTimeout: z._default(duration, LIMIT_DEFAULTS.bodyIdleTimeout),
    /** Connections that completed their handshake, beyond this, are closed at once; existing ones are unaffected. */
    maxConnections: z._default(z.int().check(z.positive()), LIMIT_DEFAULTS.maxConnections),
    /**
     * Connections still in their TLS handshake (inbound). Counted apart from maxConnections, so
     * silent sockets can never lock out clients that completed a handshake; past this, the oldest
     * pending one is closed.
     */
    maxPendingHandshakes: z._default(z.int().check(z.positive()), LIMIT_DEFAULTS.maxPendingHandshakes),
    /** HTTP/2 streams open at once on one connection (h2 mode). */
    maxConcurrentStreams: z._default(z.int().check(z.positive(), z.lte(1000)), LIMIT_DEFAULTS.maxConcurrentStreams),
    /**
     * A connection open this long is closed as if its peer's certificate had expired (GOAWAY in
     * h2, after the request in flight in http); off when unset. Connections always end with their
     * peer's certificate (expiry or a CRL revoking it).
     */
    maxConnectionLifetime: z.optional(duration),
  }),
  LIMIT_DEFAULTS,
);

/** One JSON line per request (http, h2) or connection (tcp), with the peer, status, bytes and duration. Off by default. */
const accessLog = z._default(z.boolean(), false);

const inboundListener = z.strictObject({
  name: listenerName,
  listen: hostPort,
  /** The app, in plaintext; loopback in a pod. */
  target: hostPort,
  /** http: HTTP/1.1 (http-proxy passes and upgrades, an undici pool for requests); h2: HTTP/2 and gRPC (ALPN h2, cleartext h2 to the app); tcp: a raw byte pipe. */
  mode: z._default(z.enum(['http', 'h2', 'tcp']), 'http'),
  limits,
  /** How the app learns who called: Envoy's x-forwarded-client-cert, RFC 9440 Client-Cert, or nothing. */
  forwardClientCert: z._default(z.enum(['xfcc', 'rfc9440', 'none']), 'xfcc'),
  /** Host header the app sees (e.g. a virtual host it routes on); the client's Host when unset. */
  rewriteHost: z.optional(z.string().check(z.minLength(1))),
  /** How request paths are normalized before they are authorized and forwarded (http and h2 modes). */
  requestPath: z._default(
    z.strictObject({
      /** `//a//b` is `/a/b`. */
      mergeSlashes: z._default(z.boolean(), true),
      /** An encoded `/` or `\\` (%2F, %5C): reject the request with a 400, or keep it as it is. */
      escapedSlashes: z._default(z.enum(['reject', 'keep']), 'reject'),
      /** `;` path parameters (`/a;x=1`): reject the request with a 400, or cut them off each segment as Tomcat does. */
      semicolons: z._default(z.enum(['reject', 'strip']), 'reject'),
    }),
    { mergeSlashes: true, escapedSlashes: 'reject', semicolons: 'reject' },
  ),
  /** X-Forwarded-For/-Proto/-Port/-Host a client sent: replaced by ours (default), or kept with ours appended (behind a trusted proxy). */
  forwardedHeaders: z._default(z.enum(['replace', 'append']), 'replace'),
  /** Who may call, beyond holding a certificate from the trusted CA. Absent: every such peer. */
  authorization: z.optional(
    z.strictObject({
      allow: z.array(allowRule).check(z.minLength(1)),
      /** Log would-be denials and let them through, to try rules out before enforcing them. */
      dryRun: z._default(z.boolean(), false),
    }),
  ),
  accessLog,
  metrics: z._default(
    z.strictObject({
      /**
       * Label request metrics with the client's SPIFFE ID (`peer`). Each distinct peer is a set of
       * series; past 100 on one listener, later peers are counted as `other`.
       */
      peerLabel: z._default(z.boolean(), false),
    }),
    { peerLabel: false },
  ),
});

const outboundListener = z.strictObject({
  name: listenerName,
  /** Where the app connects in plaintext; loopback by default for safety. */
  listen: hostPort,
  /** The remote service, dialled with mTLS. */
  target: hostPort,
  /** The name the server's certificate must carry (and the SNI sent); the target host when unset. */
  serverName: z.optional(z.string()),
  /** h2: the app speaks cleartext HTTP/2 (prior knowledge) and the upstream HTTP/2 over mTLS. */
  mode: z._default(z.enum(['http', 'h2', 'tcp']), 'http'),
  limits,
  accessLog,
});

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
export type IdentityConfig = Parsed['identity'];
export type VaultAuthConfig = NonNullable<Parsed['vault']>['auth'];

/** Vault settings after env defaults are applied: address is known and the token (if any) resolved. */
export type VaultConfig = Omit<NonNullable<Parsed['vault']>, 'address'> & {
  address: string;
  /** From VAULT_TOKEN; never logged. */
  token?: string;
};

export type Config = Omit<Parsed, 'vault'> & { vault?: VaultConfig };
