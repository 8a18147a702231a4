/**
 * Per-listener limits and timeouts, with their defaults.
 */
import * as z from 'zod/mini';
import { duration } from './fields.js';

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
export const limits = z._default(
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
