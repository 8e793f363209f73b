import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/** Paths pino blanks out in every record (as runtime/log.ts): secrets never reach the log. */
const REDACT_PATHS = ['password', 'token', 'secret', 'authorization', 'jwt', '*.password', '*.token', '*.secret', '*.authorization', '*.jwt'];

export interface CentralLogOptions {
  level: string;
  /** Human output; defaults to "stdout is a terminal". */
  pretty?: boolean;
  /** For tests; defaults to stdout. */
  destination?: NodeJS.WritableStream;
}

/**
 * JSON lines on stdout, one child logger per component (`log.child({ component: 'ingest-mqtt' })`),
 * the same shape as the gateway's logs (runtime/log.ts), so one log pipeline reads both.
 */
export function createCentralLogger(options: CentralLogOptions): Logger {
  const base: LoggerOptions = {
    level: options.level,
    base: undefined,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  const pretty = options.pretty ?? (options.destination === undefined && process.stdout.isTTY === true);
  if (pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true, ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss.l' } } });
  }
  if (options.destination) return pino(base, options.destination as pino.DestinationStream);
  return pino(base, pino.destination({ dest: 1, sync: false }));
}

/**
 * Logs a kind of problem once per `windowMs` (the key names the kind: path, gateway, code);
 * the next line of that kind carries how many were left out. A broker redelivering a poison
 * message, or a gateway with a wrong secret retrying every second, is counted in metrics
 * and logged once a minute, not line by line. At most `max` kinds are remembered.
 */
export function rateLimitedWarn(log: Logger, windowMs = 60_000, max = 1000) {
  const kinds = new Map<string, { at: number; suppressed: number }>();
  return (key: string, fields: Record<string, unknown>, message: string): void => {
    const now = Date.now();
    const k = kinds.get(key);
    if (k && now - k.at < windowMs) {
      k.suppressed++;
      return;
    }
    if (!k && kinds.size >= max) kinds.clear();
    log.warn(k?.suppressed ? { ...fields, suppressed: k.suppressed } : fields, message);
    kinds.set(key, { at: now, suppressed: 0 });
  };
}
