// Logging: pino JSON lines to stdout (journald keeps them). Takes a level, gives a logger.
// Messages are constant strings; what varies goes in structured fields. Fields named for a secret
// (see redact.ts) are censored by pino: a second line of defence, no code logs a secret on purpose.

import { pino, type Logger } from 'pino';
import { z } from 'zod';
import { REDACTED, secretLogPaths } from './redact.js';

export const logOptionsSchema = z
  .strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .prefault({});

export type LogOptions = z.infer<typeof logOptionsSchema>;
export type { Logger };

export function createLogger(options: LogOptions, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level: options.level,
      base: { service: 'edge-agent' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: secretLogPaths(), censor: REDACTED },
    },
    destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

/**
 * Logs at most once per `intervalMs` per key, and says how many were suppressed in between. Timed by
 * the monotonic clock: a wall clock stepped back (NTP, a dead RTC battery) would silence it for the
 * length of the step.
 */
export function createRateLimitedLog(intervalMs: number, clock: () => number = () => performance.now()) {
  const last = new Map<string, { at: number; suppressed: number }>();
  return (key: string, emit: (suppressed: number) => void): void => {
    const now = clock();
    const entry = last.get(key);
    if (entry && now - entry.at < intervalMs) {
      entry.suppressed++;
      return;
    }
    emit(entry?.suppressed ?? 0);
    last.set(key, { at: now, suppressed: 0 });
  };
}
