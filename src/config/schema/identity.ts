/**
 * The `identity` section: where the certificate comes from (Vault, files or the dev CA), the names
 * it carries, and when it is renewed.
 */
import * as z from 'zod/mini';
import { duration } from './fields.js';

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

export const identitySection = z.strictObject({
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
