import { pino, type Logger, type LoggerOptions } from 'pino';
import { repeatLimiter } from './log-limit.js';

export type { Logger };

/** Paths pino blanks out in every record: secrets never reach the log. */
export const REDACT_PATHS = [
  'password',
  'passwordHash',
  'token',
  'secret',
  'authorization',
  '*.password',
  '*.passwordHash',
  '*.token',
  '*.secret',
  '*.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
];

export interface LogOptions {
  level: string;
  /** Pretty, human output; defaults to "stdout is a terminal". */
  pretty?: boolean;
  /** Destination for tests; defaults to stdout. */
  destination?: NodeJS.WritableStream;
  /**
   * Warnings and errors of one kind are logged once per this many ms, the next one counting
   * those left out (runtime/log-limit.ts). The gateway process sets a minute; off when absent.
   */
  repeatWindowMs?: number;
}

export function createLogger(options: LogOptions): Logger {
  const base: LoggerOptions = {
    level: options.level,
    base: undefined,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    ...(options.repeatWindowMs ? { hooks: { logMethod: repeatLimiter(options.repeatWindowMs).logMethod as NonNullable<LoggerOptions['hooks']>['logMethod'] } } : {}),
  };
  const pretty = options.pretty ?? (options.destination === undefined && process.stdout.isTTY === true);
  if (pretty) {
    return pino({
      ...base,
      transport: { target: 'pino-pretty', options: { colorize: true, ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss.l' } },
    });
  }
  if (options.destination) return pino(base, options.destination as pino.DestinationStream);
  return pino(base, pino.destination({ dest: 1, sync: false }));
}
