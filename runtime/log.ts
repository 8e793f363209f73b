import { pino, type Logger, type LoggerOptions } from 'pino';
import { repeatLimiter } from './log-limit.js';

export type { Logger };

/** Paths pino blanks out in every record: secrets never reach the log. */
const REDACT_PATHS = [
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
    ...(options.repeatWindowMs
      ? { hooks: { logMethod: repeatLimiter(options.repeatWindowMs).logMethod as NonNullable<LoggerOptions['hooks']>['logMethod'] } }
      : {}),
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

/** Logs a kind of problem once (see {@link warnOnce}); true when this call logged. */
export interface WarnOnce {
  (key: string, fields: Record<string, unknown>, message: string): boolean;
  /** Forget every kind: each logs once more. */
  clear(): void;
  /** Kinds remembered. */
  readonly size: number;
}

/**
 * The one warn-once: the first problem of a kind (`key`: what it is about and its error code)
 * is logged as a warning, the repeats are not (callers count them in metrics). At most `max`
 * kinds are remembered; past that all are forgotten, so a kind may be logged once more
 * rather than memory growing with every client or topic ever seen. `log` may be a function
 * for components whose logger is known only later (an adapter's, at start).
 */
export function warnOnce(log: Logger | (() => Logger), options: { max?: number } = {}): WarnOnce {
  const max = options.max ?? 1000;
  const seen = new Set<string>();
  const fn = ((key: string, fields: Record<string, unknown>, message: string): boolean => {
    if (seen.has(key)) return false;
    if (seen.size >= max) seen.clear();
    seen.add(key);
    (typeof log === 'function' ? log() : log).warn(fields, message);
    return true;
  }) as WarnOnce;
  fn.clear = () => seen.clear();
  Object.defineProperty(fn, 'size', { get: () => seen.size });
  return fn;
}
