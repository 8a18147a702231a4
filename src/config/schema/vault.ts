/**
 * The `vault` section: where Vault is, how the sidecar logs in, and which PKI mount and role sign
 * its certificate.
 */
import * as z from 'zod/mini';
import { duration } from './fields.js';

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

export const vaultSection = z.strictObject({
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
