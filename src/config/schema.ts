/**
 * The shape of the configuration file, with its defaults. zod gives us field paths in errors and
 * the typed, parsed result; `.strict()` everywhere so a misspelt field is an error, not a no-op.
 */
import { z } from 'zod';
import { type HostPort, parseDurationSeconds, parseHostPort } from './parse.js';

const duration = z.union([z.string(), z.number()]).transform((value, ctx): number => {
  const seconds = parseDurationSeconds(value);
  if (seconds === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a duration; use e.g. 90s, 15m or 1h` });
    return z.NEVER;
  }
  return seconds;
});

const hostPort = z.string().transform((value, ctx): HostPort => {
  const parsed = parseHostPort(value);
  if (!parsed) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not host:port; use e.g. 127.0.0.1:8080 or [::1]:8443` });
    return z.NEVER;
  }
  return parsed;
});

const listenerName = z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'use lowercase letters, digits, - and _');

const tokenAuth = z
  .object({
    method: z.literal('token'),
    /** A file holding the token; otherwise VAULT_TOKEN. */
    tokenFile: z.string().optional(),
  })
  .strict();

const approleAuth = z
  .object({
    method: z.literal('approle'),
    mount: z.string().default('approle'),
    roleId: z.string().optional(),
    roleIdFile: z.string().optional(),
    secretIdFile: z.string().optional(),
  })
  .strict();

/** Kubernetes service-account token login; the file is re-read at every login because the kubelet rotates it. */
const kubernetesAuth = z
  .object({
    method: z.literal('kubernetes'),
    mount: z.string().default('kubernetes'),
    role: z.string().min(1),
    tokenFile: z.string().default('/var/run/secrets/kubernetes.io/serviceaccount/token'),
  })
  .strict();

/** A JWT (for example the same projected service-account token) through Vault's jwt auth method. */
const jwtAuth = z
  .object({
    method: z.literal('jwt'),
    mount: z.string().default('jwt'),
    role: z.string().min(1),
    tokenFile: z.string().min(1),
  })
  .strict();

const vaultSection = z
  .object({
    /** Vault's address; VAULT_ADDR when unset. A scheme is required: `vault.svc:8200` parses as a URL whose scheme is `vault.svc:`. */
    address: z
      .string()
      .refine((value) => /^https?:\/\/[^/\s]+/i.test(value) && URL.canParse(value), {
        error: (issue) =>
          `expected an http:// or https:// URL such as https://vault.svc:8200, found ${JSON.stringify(issue.input)} (from vault.address, VAULT_ADDR or --vault-addr)`,
      })
      .optional(),
    namespace: z.string().optional(),
    /** PEM file of the CA that signed Vault's own TLS certificate; VAULT_CACERT when unset. */
    caCert: z.string().optional(),
    skipVerify: z.boolean().default(false),
    requestTimeout: duration.default(10),
    auth: z.discriminatedUnion('method', [tokenAuth, approleAuth, kubernetesAuth, jwtAuth]).default({ method: 'token' }),
    /** On a clean shutdown, revoke the last certificate (proving it with its key) and/or the Vault token. */
    revokeOnShutdown: z
      .object({ certificate: z.boolean().default(false), token: z.boolean().default(false) })
      .strict()
      .default({ certificate: false, token: false }),
    pki: z
      .object({
        mount: z.string().default('pki'),
        role: z.string().min(1),
        /** How often the mount's issuers (trust bundle) and CRLs are fetched again. */
        refreshInterval: duration.default(300),
        /**
         * How often the mount's issuer list is checked (one LIST call). A new issuer is fetched at
         * once, and this sidecar moves onto a new issuer only after trusting it for twice this long,
         * so its peers (checking as often) trust it first: an issuer rotation fails no handshake.
         */
        issuerCheckInterval: duration.default(15),
        /**
         * CRL enforcement on inbound and outbound handshakes. soft: when the CRL cannot be refreshed
         * past its nextUpdate, stop checking it (and say so); closed: keep it, so handshakes fail and
         * the sidecar is not ready; off: no CRL.
         */
        crl: z.enum(['soft', 'closed', 'off']).default('soft'),
        /**
         * sign (default): the key pair is made in the pod and Vault signs a CSR (<mount>/sign/<role>),
         * so the private key never crosses the network. issue: Vault makes the key and sends it
         * (<mount>/issue/<role>).
         */
        method: z.enum(['sign', 'issue']).default('sign'),
      })
      .strict(),
  })
  .strict();

const pemFiles = z
  .object({
    cert: z.string().min(1),
    key: z.string().min(1),
    ca: z.string().min(1),
    /** Fallback check for changed files where the filesystem sends no change events. */
    pollInterval: duration.default(10),
  })
  .strict();

const pkcs12File = z
  .object({
    pkcs12: z.string().min(1),
    passwordFile: z.string().optional(),
    /** CA certificates peers must chain to; the last certificate in the bundle when unset. */
    ca: z.string().optional(),
    pollInterval: duration.default(10),
  })
  .strict();

const identitySection = z
  .object({
    source: z.enum(['vault', 'dev', 'files']).default('vault'),
    /** For source files: where the certificate, key and CA are (PEM), or a PKCS#12 bundle. */
    files: z.union([pemFiles, pkcs12File]).optional(),
    /** Required for vault and dev; for files, the certificate carries its own names. */
    commonName: z.string().min(1).optional(),
    dnsNames: z.array(z.string().min(1)).default([]),
    ipSans: z.array(z.string().min(1)).default([]),
    uriSans: z.array(z.string().url()).default([]),
    ttl: duration.default(3600),
    /** The key pair made in the pod for vault.pki.method sign. */
    keyType: z.enum(['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096']).default('ec-p256'),
    renewal: z
      .object({
        /** Renew at a random point between these fractions of the lifetime, so a fleet does not renew in step. */
        windowStart: z.number().gt(0).lt(1).default(0.5),
        windowEnd: z.number().gt(0).lt(1).default(0.7),
        /** Validity to keep in hand for a Vault outage: never renew later than notAfter minus this. */
        outageBudget: duration.default(120),
        /** First retry delay after a failed renewal; doubles (with full jitter) up to maxBackoff. */
        minBackoff: duration.default(1),
        maxBackoff: duration.default(60),
      })
      .strict()
      .default({ windowStart: 0.5, windowEnd: 0.7, outageBudget: 120, minBackoff: 1, maxBackoff: 60 }),
  })
  .strict();

/**
 * One allow rule: every identity field given must match the peer (any of its values); `*` matches
 * one segment (between `/` in URIs, `.` in DNS names), `**` anything. Methods and path prefixes
 * (http mode only) narrow the rule further.
 */
const allowRule = z
  .object({
    spiffe: z.string().min(1).optional(),
    uri: z.string().min(1).optional(),
    dns: z.string().min(1).optional(),
    cn: z.string().min(1).optional(),
    ou: z.string().min(1).optional(),
    methods: z.array(z.string().min(1).toUpperCase()).optional(),
    paths: z
      .array(
        z
          .string()
          .startsWith('/')
          // Requests are matched on their normalized path, so a rule that is not normalized could never match.
          .refine(
            (path) => !/\/\/|\/\.\.?(\/|$)|[?#\\]/.test(path),
            'write the path normalized, as requests are matched: no //, no . or .. segments, no ? # or \\',
          ),
      )
      .optional(),
  })
  .strict()
  .refine((rule) => Object.keys(rule).length > 0, 'an empty rule would allow everyone; name at least one field')
  // Both match URI SANs; a rule naming both would silently test only one.
  .refine((rule) => !(rule.spiffe && rule.uri), 'spiffe and uri both match URI SANs; give one of them per rule');

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
const limits = z
  .object({
    /** Dialling the app (inbound) or the upstream (outbound), including the TLS handshake. */
    connectTimeout: duration.default(LIMIT_DEFAULTS.connectTimeout),
    /** A connection with no traffic for this long is closed. */
    idleTimeout: duration.default(LIMIT_DEFAULTS.idleTimeout),
    /** A client must complete its TLS handshake within this (silent sockets). */
    handshakeTimeout: duration.default(LIMIT_DEFAULTS.handshakeTimeout),
    /** A client must send its complete request headers within this (slow-header attacks). */
    headersTimeout: duration.default(LIMIT_DEFAULTS.headersTimeout),
    /** A client must send its whole request, body included, within this (http mode). */
    requestTimeout: duration.default(LIMIT_DEFAULTS.requestTimeout),
    /** Silence allowed while a request body is arriving (slow-body attacks; http mode). */
    bodyIdleTimeout: duration.default(LIMIT_DEFAULTS.bodyIdleTimeout),
    /** Connections that completed their handshake, beyond this, are closed at once; existing ones are unaffected. */
    maxConnections: z.number().int().positive().default(LIMIT_DEFAULTS.maxConnections),
    /**
     * Connections still in their TLS handshake (inbound). Counted apart from maxConnections, so
     * silent sockets can never lock out clients that completed a handshake; past this, the oldest
     * pending one is closed.
     */
    maxPendingHandshakes: z.number().int().positive().default(LIMIT_DEFAULTS.maxPendingHandshakes),
    /** HTTP/2 streams open at once on one connection (h2 mode). */
    maxConcurrentStreams: z.number().int().positive().max(1000).default(LIMIT_DEFAULTS.maxConcurrentStreams),
  })
  .strict()
  .default(LIMIT_DEFAULTS);

/** One JSON line per request (http, h2) or connection (tcp), with the peer, status, bytes and duration. Off by default. */
const accessLog = z.boolean().default(false);

const inboundListener = z
  .object({
    name: listenerName,
    listen: hostPort,
    /** The app, in plaintext; loopback in a pod. */
    target: hostPort,
    /** http: HTTP/1.1 (http-proxy passes and upgrades, an undici pool for requests); h2: HTTP/2 and gRPC (ALPN h2, cleartext h2 to the app); tcp: a raw byte pipe. */
    mode: z.enum(['http', 'h2', 'tcp']).default('http'),
    limits,
    /** How the app learns who called: Envoy's x-forwarded-client-cert, RFC 9440 Client-Cert, or nothing. */
    forwardClientCert: z.enum(['xfcc', 'rfc9440', 'none']).default('xfcc'),
    /** Host header the app sees (e.g. a virtual host it routes on); the client's Host when unset. */
    rewriteHost: z.string().min(1).optional(),
    /** How request paths are normalized before they are authorized and forwarded (http and h2 modes). */
    requestPath: z
      .object({
        /** `//a//b` is `/a/b`. */
        mergeSlashes: z.boolean().default(true),
        /** An encoded `/` or `\\` (%2F, %5C): reject the request with a 400, or keep it as it is. */
        escapedSlashes: z.enum(['reject', 'keep']).default('reject'),
      })
      .strict()
      .default({ mergeSlashes: true, escapedSlashes: 'reject' }),
    /** X-Forwarded-For/-Proto/-Port/-Host a client sent: replaced by ours (default), or kept with ours appended (behind a trusted proxy). */
    forwardedHeaders: z.enum(['replace', 'append']).default('replace'),
    /** Who may call, beyond holding a certificate from the trusted CA. Absent: every such peer. */
    authorization: z
      .object({
        allow: z.array(allowRule).min(1),
        /** Log would-be denials and let them through, to try rules out before enforcing them. */
        dryRun: z.boolean().default(false),
      })
      .strict()
      .optional(),
    accessLog,
    metrics: z
      .object({
        /**
         * Label request metrics with the client's SPIFFE ID (`peer`). Each distinct peer is a set of
         * series; past 100 on one listener, later peers are counted as `other`.
         */
        peerLabel: z.boolean().default(false),
      })
      .strict()
      .default({ peerLabel: false }),
  })
  .strict();

const outboundListener = z
  .object({
    name: listenerName,
    /** Where the app connects in plaintext; loopback by default for safety. */
    listen: hostPort,
    /** The remote service, dialled with mTLS. */
    target: hostPort,
    /** The name the server's certificate must carry (and the SNI sent); the target host when unset. */
    serverName: z.string().optional(),
    /** h2: the app speaks cleartext HTTP/2 (prior knowledge) and the upstream HTTP/2 over mTLS. */
    mode: z.enum(['http', 'h2', 'tcp']).default('http'),
    limits,
    accessLog,
  })
  .strict();

export const configSchema = z
  .object({
    vault: vaultSection.optional(),
    identity: identitySection,
    inbound: z.array(inboundListener).default([]),
    outbound: z.array(outboundListener).default([]),
    admin: z
      .object({
        listen: hostPort.default({ host: '127.0.0.1', port: 15000 }),
        /**
         * /readyz stays ready while Vault is down as long as the certificate has at least this much
         * validity left; below it the pod leaves the Service before peers start failing handshakes.
         */
        readyMinValidity: duration.default(10),
        /** POST /rotate (loopback callers only) is refused with 429 sooner than this after the last one. */
        rotateMinInterval: duration.default(10),
      })
      .strict()
      .default({ listen: { host: '127.0.0.1', port: 15000 }, readyMinValidity: 10, rotateMinInterval: 10 }),
    /** TLS policy for every listener and outbound dial. */
    tls: z
      .object({
        /**
         * intermediate (Mozilla's profile): TLS 1.2 with ECDHE and AEAD suites, and TLS 1.3.
         * modern: TLS 1.3 only.
         */
        profile: z.enum(['intermediate', 'modern']).default('intermediate'),
        /** An OpenSSL cipher list for TLS 1.2, replacing the profile's (TLS 1.3 suites are not affected). */
        ciphers: z.string().min(1).optional(),
      })
      .strict()
      .default({ profile: 'intermediate' }),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
        /** auto: human-readable on a terminal, JSON lines otherwise. */
        format: z.enum(['auto', 'json', 'pretty']).default('auto'),
      })
      .strict()
      .default({ level: 'info', format: 'auto' }),
    /** How long to wait for the first certificate before giving up at start-up. */
    startupTimeout: duration.default(60),
    /**
     * After SIGTERM, how long the listeners keep accepting (with /readyz already 503) before the
     * drain: endpoints take a few seconds to drop the pod, and peers keep dialling it until then.
     */
    shutdownDelay: duration.default(0),
    /** How long SIGTERM waits for in-flight requests before closing connections. */
    drainTimeout: duration.default(20),
  })
  .strict();

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
