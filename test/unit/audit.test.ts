import { Writable } from 'node:stream';
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { AuditLog } from '../../src/telemetry/audit.js';
import { handshakeFailureReason } from '../../src/telemetry/metrics.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  return { logger: pino(sink), lines };
}

const event = { event: 'tls_handshake_rejected', listener: 'http', remoteAddress: '10.0.0.1', reason: 'no_certificate' };

it('logs a burst, then the steady rate, and reports what it held back', () => {
  const { logger, lines } = capture();
  let now = 0;
  const audit = new AuditLog(logger, { burst: 3, perSecond: 1 }, () => now);
  for (let i = 0; i < 10; i++) audit.record(event, 'rejected');
  expect(lines).toHaveLength(3);
  now = 1000;
  audit.record(event, 'rejected');
  expect(lines).toHaveLength(4);
  expect(lines[3]).toMatchObject({ audit: true, suppressedBefore: 7 });
  for (let i = 0; i < 5; i++) audit.record(event, 'rejected');
  audit.close();
  expect(lines[4]).toMatchObject({ event: 'tls_handshake_rejected', listener: 'http', suppressed: 5 });
});

it('limits each listener separately', () => {
  const { logger, lines } = capture();
  const audit = new AuditLog(logger, { burst: 1, perSecond: 0 }, () => 0);
  audit.record(event, 'rejected');
  audit.record({ ...event, listener: 'grpc' }, 'rejected');
  audit.record(event, 'rejected');
  audit.close();
  expect(lines.map((l) => [l.listener, l.suppressed])).toEqual([
    ['http', undefined],
    ['grpc', undefined],
    ['http', 1],
  ]);
});

it.each([
  [{ code: 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE', message: 'peer did not return a certificate' }, 'no_certificate'],
  // An alert is what the *peer* sent: it refused our certificate.
  [{ code: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', message: 'tlsv1 alert unknown ca' }, 'peer_refused_certificate'],
  [{ code: 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', message: 'sslv3 alert bad certificate' }, 'peer_refused_certificate'],
  [{ code: 'CERT_NOT_YET_VALID', message: 'socket hang up' }, 'not_yet_valid'],
  [{ code: 'UNSUPPORTED_CERTIFICATE_PURPOSE', message: 'socket hang up' }, 'wrong_purpose'],
  [{ code: 'ERR_TLS_HANDSHAKE_TIMEOUT', message: 'TLS handshake timeout' }, 'timeout'],
  [{ code: 'ERR_TLS_CA_AS_LEAF', message: 'presented a CA certificate as its own' }, 'ca_as_leaf'],
  [{ code: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', message: 'unable to get local issuer certificate' }, 'unknown_ca'],
  [{ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', message: 'socket hang up' }, 'unknown_ca'],
  [{ code: 'CERT_HAS_EXPIRED', message: 'socket hang up' }, 'expired'],
  [{ code: 'CERT_REVOKED', message: 'socket hang up' }, 'revoked'],
  [{ code: 'ERR_TLS_CERT_ALTNAME_INVALID', message: "Hostname/IP does not match certificate's altnames" }, 'identity_denied'],
  [{ code: 'ERR_SSL_WRONG_VERSION_NUMBER', message: 'wrong version number' }, 'protocol'],
])('classifies %o as %s', (err, reason) => {
  expect(handshakeFailureReason(Object.assign(new Error(err.message), { code: err.code }))).toBe(reason);
});

it('limits each reason separately: a flood of one reason does not hide another', () => {
  const { logger, lines } = capture();
  const audit = new AuditLog(logger, { burst: 2, perSecond: 0 }, () => 0);
  for (let i = 0; i < 50; i++) audit.record(event, 'rejected');
  audit.record({ ...event, reason: 'revoked' }, 'rejected');
  audit.record({ ...event, reason: 'ca_as_leaf' }, 'rejected');
  expect(lines.map((l) => l.reason)).toEqual(['no_certificate', 'no_certificate', 'revoked', 'ca_as_leaf']);
  audit.close();
  expect(lines[4]).toMatchObject({ event: 'tls_handshake_rejected', listener: 'http', reason: 'no_certificate', suppressed: 48 });
});

it('keeps its buckets bounded when reasons vary without end: later ones share one bucket', () => {
  const { logger, lines } = capture();
  const audit = new AuditLog(logger, { burst: 1, perSecond: 0 }, () => 0);
  for (let i = 0; i < 10_000; i++) audit.record({ ...event, event: 'authz_denied', reason: `no allow rule matches GET /p${i}` }, 'denied');
  // One line per reason up to the cap, then one for all the rest.
  expect(lines.length).toBeLessThan(100);
  audit.record(event, 'rejected');
  expect(lines.at(-1)).toMatchObject({ reason: 'no_certificate' });
});
