/**
 * The Prometheus registry and every series the sidecar exports, prefixed `sidecar_` and named with
 * their units. Parts of the sidecar receive this object (or one of its narrow views) and record;
 * values that are states rather than events (expiry, next renewal, token TTL) are read when
 * scraped, so they are never stale.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Why a TLS handshake failed, as a bounded label set. */
export type HandshakeFailureReason =
  | 'no_certificate'
  | 'unknown_ca'
  | 'expired'
  | 'not_yet_valid'
  | 'revoked'
  | 'wrong_purpose'
  | 'ca_as_leaf'
  | 'untrusted_issuer'
  | 'crl_unavailable'
  | 'identity_denied'
  | 'peer_refused_certificate'
  | 'peer_closed'
  | 'timeout'
  | 'protocol';

export interface MetricsSources {
  certificateNotAfter(): Date | undefined;
  nextRenewal(): Date | undefined;
  /** When the Vault token expires; undefined without Vault or for a token that never expires. */
  vaultTokenExpiresAt(): Date | undefined;
  /** When the CRLs were last fetched; undefined without CRLs. */
  crlFetchedAt(): Date | undefined;
}

const seconds = (date: Date) => date.getTime() / 1000;

export class Metrics {
  readonly registry = new Registry();

  readonly certRenewals = new Counter({
    name: 'sidecar_cert_renewals_total',
    help: 'Certificate issue attempts, by result (success, failure, refused by verification).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly vaultRequestDuration = new Histogram({
    name: 'sidecar_vault_request_duration_seconds',
    help: 'Vault API calls, by operation and HTTP status (or "error" when there was no answer).',
    labelNames: ['operation', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly handshakeFailures = new Counter({
    name: 'sidecar_tls_handshake_failures_total',
    help: 'TLS handshakes that failed, by listener and reason.',
    labelNames: ['listener', 'reason'] as const,
    registers: [this.registry],
  });

  readonly authzDenials = new Counter({
    name: 'sidecar_authz_denials_total',
    help: 'Requests or connections refused by an authorization rule, by listener.',
    labelNames: ['listener'] as const,
    registers: [this.registry],
  });

  readonly connectionsShed = new Counter({
    name: 'sidecar_connections_shed_total',
    help: 'Connections closed by a listener limit, by listener and reason (max_connections, pending_handshakes, denied_peer, identity_share).',
    labelNames: ['listener', 'reason'] as const,
    registers: [this.registry],
  });

  readonly connectionsClosed = new Counter({
    name: 'sidecar_connections_closed_total',
    help: "Open connections closed because their peer's certificate ended or they lived too long, by listener and reason (peer_certificate_expired, peer_certificate_revoked, max_lifetime).",
    labelNames: ['listener', 'reason'] as const,
    registers: [this.registry],
  });

  readonly badRequests = new Counter({
    name: 'sidecar_bad_requests_total',
    help: 'Requests refused before forwarding because they were malformed, too large or too slow, by listener and reason.',
    labelNames: ['listener', 'reason'] as const,
    registers: [this.registry],
  });

  readonly h2SessionsRefused = new Counter({
    name: 'sidecar_h2_sessions_refused_total',
    help: 'HTTP/2 connections the sidecar closed with GOAWAY for abuse (rapid_reset, protocol_error), by listener and reason.',
    labelNames: ['listener', 'reason'] as const,
    registers: [this.registry],
  });

  readonly connectionsActive = new Gauge({
    name: 'sidecar_connections_active',
    help: 'Open client connections, by listener and direction.',
    labelNames: ['listener', 'direction'] as const,
    registers: [this.registry],
  });

  readonly requests = new Counter({
    name: 'sidecar_requests_total',
    help: "HTTP requests (http and h2 modes) answered, by listener, direction, status code and, where a listener opts in, the peer's SPIFFE ID.",
    labelNames: ['listener', 'direction', 'status', 'peer'] as const,
    registers: [this.registry],
  });

  readonly requestDuration = new Histogram({
    name: 'sidecar_request_duration_seconds',
    help: 'Time from request to the end of the response, by listener, direction and (opt-in) peer.',
    labelNames: ['listener', 'direction', 'peer'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  /** Both byte counters are brought up to date at every scrape, so a long stream shows while it runs (see server-metrics.ts). */
  readonly bytesReceived = new Counter({
    name: 'sidecar_bytes_received_total',
    help: 'Bytes received from clients of a listener (TLS records included on inbound listeners), by listener and direction.',
    labelNames: ['listener', 'direction'] as const,
    registers: [this.registry],
  });

  readonly bytesSent = new Counter({
    name: 'sidecar_bytes_sent_total',
    help: 'Bytes sent to clients of a listener (TLS records included on inbound listeners), by listener and direction.',
    labelNames: ['listener', 'direction'] as const,
    registers: [this.registry],
  });

  /** Runs before every scrape (byte counters of open connections). */
  readonly #beforeScrape: Array<() => void> = [];

  beforeScrape(update: () => void): void {
    this.#beforeScrape.push(update);
  }

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /**
   * Identity gauges, read at scrape time. Each carries a label saying what it measures (the
   * certificate source, the Vault auth method, the PKI mount) and is absent while it does not
   * apply — no token TTL without Vault, no CRL age without CRLs — so an alert on it never fires on
   * a pod it does not concern (an unlabelled gauge would read 0 there).
   */
  watchIdentity(sources: MetricsSources, labels: { source: string; auth?: string | undefined; mount?: string | undefined }): void {
    const age = (since: Date) => (Date.now() - since.getTime()) / 1000;
    const source = { source: labels.source };
    this.#scrapeGauge(
      'sidecar_cert_expiry_timestamp_seconds',
      'notAfter of the certificate being served, as a Unix timestamp.',
      source,
      () => sources.certificateNotAfter(),
      seconds,
    );
    this.#scrapeGauge(
      'sidecar_cert_next_renewal_timestamp_seconds',
      'When the next certificate renewal is scheduled, as a Unix timestamp.',
      source,
      () => sources.nextRenewal(),
      seconds,
    );
    if (labels.auth) {
      this.#scrapeGauge(
        'sidecar_vault_token_ttl_seconds',
        'Seconds left on the Vault token (absent for a token that never expires).',
        { auth: labels.auth },
        () => sources.vaultTokenExpiresAt(),
        (expiresAt) => Math.max(0, -age(expiresAt)),
      );
    }
    if (labels.mount) {
      this.#scrapeGauge(
        'sidecar_crl_age_seconds',
        'Seconds since the CRLs were last fetched (absent without CRLs).',
        { mount: labels.mount },
        () => sources.crlFetchedAt(),
        age,
      );
    }
  }

  /** A gauge set at scrape time from a date, with fixed labels; absent while `read` has none. */
  #scrapeGauge(
    name: string,
    help: string,
    labels: Record<string, string>,
    read: () => Date | undefined,
    value: (date: Date) => number,
  ): void {
    new Gauge({
      name,
      help,
      labelNames: Object.keys(labels),
      registers: [this.registry],
      collect() {
        const date = read();
        if (date) this.set(labels, value(date));
        else this.reset();
      },
    });
  }

  text(): Promise<string> {
    for (const update of this.#beforeScrape) update();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** Maps a Node/OpenSSL handshake error to a reason label. The order matters: an alert the peer sent names *our* certificate. */
export function handshakeFailureReason(err: { code?: string | undefined; message: string }): HandshakeFailureReason {
  const text = `${err.code ?? ''} ${err.message}`.toUpperCase();
  if (
    /ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED|DECRYPT_ERROR)|ALERT (UNKNOWN CA|BAD CERTIFICATE|CERTIFICATE )/.test(
      text,
    )
  ) {
    return 'peer_refused_certificate';
  }
  if (/PEER_DID_NOT_RETURN_A_CERTIFICATE|CERTIFICATE_REQUIRED/.test(text)) return 'no_certificate';
  if (/HANDSHAKE_TIMEOUT|ETIMEDOUT/.test(text)) return 'timeout';
  if (/NOT_YET_VALID/.test(text)) return 'not_yet_valid';
  // No CRL for the issuer, or only an expired one: revocation cannot be checked (crl: closed).
  if (/UNABLE_TO_GET_CRL|UNABLE TO GET CERTIFICATE CRL|CRL_HAS_EXPIRED|CRL HAS EXPIRED|CRL_NOT_YET_VALID/.test(text))
    return 'crl_unavailable';
  if (/EXPIRED/.test(text)) return 'expired';
  if (/REVOKED/.test(text)) return 'revoked';
  if (/PURPOSE/.test(text)) return 'wrong_purpose';
  if (/INVALID_CA|CA_AS_LEAF/.test(text)) return 'ca_as_leaf';
  if (/UNTRUSTED_ISSUER/.test(text)) return 'untrusted_issuer';
  if (
    /UNKNOWN_CA|UNABLE_TO_GET_ISSUER|UNABLE_TO_VERIFY|LOCAL_ISSUER|SELF.SIGNED|SIGNATURE_FAILURE|CERTIFICATE_VERIFY_FAILED|UNABLE TO GET/.test(
      text,
    )
  ) {
    return 'unknown_ca';
  }
  if (/ALTNAME|IDENTITY|HOSTNAME/.test(text)) return 'identity_denied';
  return 'protocol';
}
