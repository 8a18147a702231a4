/**
 * One root pino logger; modules take `child({ module })`. Every path that can hold a secret is
 * redacted, whatever a caller passes in, so a token or key cannot reach the log by accident.
 */
import { createRequire } from 'node:module';
import { type DestinationStream, type Logger, pino } from 'pino';
import type PinoPretty from 'pino-pretty';

/** pino-pretty (and its colour and date libraries) only when a human reads the logs. */
const loadPretty = (): typeof PinoPretty => createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;

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

export type LogFormat = 'auto' | 'json' | 'pretty';

/**
 * `pretty` (or `auto` on a terminal) prints human-readable lines through pino-pretty, synchronously
 * so nothing is lost when the process exits; redaction applies before formatting either way.
 */
export function createLogger(level: string, destination?: DestinationStream, format: LogFormat = 'json', isTerminal = false): Logger {
  const human = format === 'pretty' || (format === 'auto' && isTerminal);
  const stream = human
    ? loadPretty()({ sync: true, destination: destination ?? 1, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' })
    : destination;
  return pino(
    {
      level,
      base: { service: 'vault-mtls-sidecar' },
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
  );
}
