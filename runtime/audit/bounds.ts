import type { AuditInput } from './entry.js';

/** Longest actor name, target, address or error message kept: a client id may be 64 KiB. */
const MAX_FIELD_CHARS = 200;

function cut(s: string): string {
  return s.length > MAX_FIELD_CHARS ? `${s.slice(0, MAX_FIELD_CHARS)}…` : s;
}

/**
 * The entry with every free-text field bounded: MQTT client ids, usernames, datapoint ids
 * and error messages come from whoever sent the command, and one entry must stay small in
 * memory (the in-memory tail) and on disk.
 */
export function boundFields(input: AuditInput): AuditInput {
  const actor = { ...input.actor, name: cut(input.actor.name), ...(input.actor.username !== undefined ? { username: cut(input.actor.username) } : {}) };
  return {
    ...input,
    actor,
    ...(input.target !== undefined ? { target: cut(input.target) } : {}),
    ...(input.address !== undefined ? { address: cut(input.address) } : {}),
    ...(input.error ? { error: { code: cut(input.error.code), message: cut(input.error.message) } } : {}),
  };
}

/**
 * Refused commands are recorded, but one actor repeating a refused command (a wrong current
 * password, a setpoint out of range from a looping script) must not rotate everyone else's
 * entries out of the bounded files. Per actor and action, at most `perMinute` refusals a
 * minute are recorded; the next one recorded after a quiet spell says how many were not.
 */
export class RefusalLimiter {
  private readonly windows = new Map<string, { start: number; recorded: number; suppressed: number }>();

  constructor(
    private readonly perMinute = 10,
    private readonly maxKeys = 1_000,
  ) {}

  /** undefined: do not record; else the number of refusals suppressed before this one. */
  admit(key: string, now: number): number | undefined {
    let w = this.windows.get(key);
    if (w && now - w.start >= 60_000) {
      const suppressed = w.suppressed;
      w = { start: now, recorded: 0, suppressed: 0 };
      this.windows.set(key, w);
      w.recorded++;
      return suppressed;
    }
    if (!w) {
      while (this.windows.size >= this.maxKeys) {
        const oldest = this.windows.keys().next().value;
        if (oldest === undefined) break;
        this.windows.delete(oldest);
      }
      w = { start: now, recorded: 0, suppressed: 0 };
      this.windows.set(key, w);
    }
    if (w.recorded >= this.perMinute) {
      w.suppressed++;
      return undefined;
    }
    w.recorded++;
    return 0;
  }
}
