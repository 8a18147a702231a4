/**
 * One root pino logger; modules take `child({ module })`. Every path that can hold a secret is
 * redacted, whatever a caller passes in, so a token or key cannot reach the log by accident.
 */
import { type DestinationStream, type Logger, pino } from 'pino';

export const REDACT_PATHS = [
  'token',
  '*.token',
  'client_token',
  '*.client_token',
  'secretId',
  '*.secretId',
  'secret_id',
  '*.secret_id',
  'keyPem',
  '*.keyPem',
  '*.*.keyPem',
  'private_key',
  '*.private_key',
  '*.*.private_key',
  'headers["x-vault-token"]',
  '*.headers["x-vault-token"]',
  'config.vault.token',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'vault-mtls-sidecar' },
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
