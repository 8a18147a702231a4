/**
 * Field types the config sections share: durations (90s, 15m, 1h) and host:port, parsed to what
 * the code uses, with messages that show the expected form; and listener names.
 */
import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import { type HostPort, parseDurationSeconds, parseHostPort } from '../parse.js';

// English messages for the checks whose issues we do not word ourselves (problems.ts).
z.config(en());

export const duration = z.pipe(
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

export const hostPort = z.pipe(
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

export const listenerName = z.string().check(z.regex(/^[a-z0-9][a-z0-9_-]*$/, 'use lowercase letters, digits, - and _'));
