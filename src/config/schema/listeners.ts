/**
 * The inbound (mTLS in, plaintext to the app) and outbound (plaintext from the app, mTLS out)
 * listeners.
 */
import * as z from 'zod/mini';
import { allowRule } from './authorization.js';
import { hostPort, listenerName } from './fields.js';
import { limits } from './limits.js';

/** One JSON line per request (http, h2) or connection (tcp), with the peer, status, bytes and duration. Off by default. */
const accessLog = z._default(z.boolean(), false);

export const inboundListener = z.strictObject({
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

export const outboundListener = z.strictObject({
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
