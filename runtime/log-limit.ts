/**
 * Repeated warnings and errors, one line per kind per window: a fault that lasts (a full disk,
 * a receiver that is down) made every component log it at every attempt — ~4,800 lines in two
 * minutes with a disk full, burying the one line that said why. The first line of a kind goes
 * out at once; the repeats within the window are counted, and the next line of that kind after
 * the window carries `suppressed` (how many were left out since the last one logged).
 *
 * A kind is the level, the message, the error code and the fields that name who it is about
 * (component, adapter, link, client address, username): failed logins from two addresses, or
 * refusals for two reasons, stay two lines.
 */

/** Fields that make two lines with the same message different kinds. */
const IDENTITY = ['component', 'adapter', 'link', 'address', 'username', 'code'] as const;

/** Kinds remembered at most; beyond, the ones whose window is over are forgotten (or all, if none is). */
const MAX_KINDS = 2_000;

const WARN = 40;
const FATAL = 60;

export interface RepeatLimiter {
  /** pino's `hooks.logMethod`. */
  logMethod(this: { bindings(): Record<string, unknown> }, args: unknown[], method: (...args: unknown[]) => void, level: number): void;
}

export function repeatLimiter(windowMs: number, now: () => number = Date.now): RepeatLimiter {
  const kinds = new Map<string, { since: number; suppressed: number }>();
  return {
    logMethod(args, method, level) {
      if (level < WARN || level >= FATAL) return method.apply(this, args);
      const first = args[0];
      const fields = first !== null && typeof first === 'object' && !(first instanceof Error) ? (first as Record<string, unknown>) : undefined;
      const msg = String((fields || first instanceof Error ? args[1] : first) ?? '');
      const bindings = this.bindings();
      const key = [level, msg, ...IDENTITY.map((f) => String(fields?.[f] ?? bindings[f] ?? ''))].join('\u0000');
      const t = now();
      const seen = kinds.get(key);
      if (seen && t - seen.since < windowMs) {
        seen.suppressed++;
        return;
      }
      if (!seen && kinds.size >= MAX_KINDS) forgetOld(kinds, t, windowMs);
      kinds.set(key, { since: t, suppressed: 0 });
      if (!seen || seen.suppressed === 0) return method.apply(this, args);
      // The line that ends a window names how many like it were left out.
      const extra = { suppressed: seen.suppressed, suppressedSeconds: Math.round((t - seen.since) / 1000) };
      if (fields) return method.apply(this, [{ ...fields, ...extra }, ...args.slice(1)]);
      if (first instanceof Error) return method.apply(this, [{ err: first, ...extra }, ...args.slice(1)]);
      return method.apply(this, [extra, ...args]);
    },
  };
}

function forgetOld(kinds: Map<string, { since: number; suppressed: number }>, t: number, windowMs: number): void {
  for (const [key, seen] of kinds) if (t - seen.since >= windowMs) kinds.delete(key);
  if (kinds.size >= MAX_KINDS) kinds.clear();
}
