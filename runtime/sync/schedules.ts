import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import './errors.js';
import { writeJsonState } from '../durable-file.js';
import type { Logger } from '../log.js';
import type { Clock } from '../../core/clock.js';
import type { Ingest } from '../ingest.js';
import type { DatapointRegistry } from '../datapoints/registry.js';
import { validateSetpoint, type Value } from '../../core/datapoint.js';

/** One planned setpoint: at `at` (epoch ms), write `v` to the schedule's actuator. */
export interface ScheduleEntry {
  at: number;
  v: Value;
}

export interface SetpointSchedulesOptions {
  /** JSON file holding the pending entries (survives restarts). */
  file: string;
  registry: Pick<DatapointRegistry, 'get'>;
  ingest: Pick<Ingest, 'setpoint'>;
  clock: Clock;
  log: Logger;
  /** Pending entries across all actuators at most (bounded memory and file). */
  maxEntries?: number;
}

/** setTimeout's limit; a later entry is re-armed when the timer fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Entries this much in the past when they arrive (or after a restart) are still applied once; older ones are dropped as stale. */
const LATE_GRACE_MS = 15 * 60_000;

/**
 * Setpoint schedules sent from upstream: per actuator a list of (time, value). Every value
 * is checked when the schedule arrives with the same validation as a local write (actuator,
 * type, range), so a bad schedule is refused whole and answered with the reason; each entry
 * is then applied at its time through `Ingest.setpoint`, exactly like a local setpoint.
 * A new schedule for an actuator replaces its pending entries. Pending entries are kept in
 * a file, so a restart does not lose them; one that fell due while the gateway was down is
 * applied at start if it is at most 15 minutes late, else dropped and logged.
 */
export class SetpointSchedules {
  private readonly pending = new Map<string, ScheduleEntry[]>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private applying: Promise<void> = Promise.resolve();

  constructor(private readonly o: SetpointSchedulesOptions) {}

  async start(): Promise<void> {
    this.stopped = false;
    let raw: string | undefined;
    try {
      raw = await readFile(this.o.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (raw !== undefined) {
      try {
        const saved = JSON.parse(raw) as Record<string, ScheduleEntry[]>;
        for (const [id, entries] of Object.entries(saved)) if (Array.isArray(entries) && entries.length > 0) this.pending.set(id, entries);
      } catch (err) {
        // A damaged file (power cut mid-write is prevented by the rename; this is anything else):
        // say so and start empty rather than refuse to run.
        this.o.log.error({ file: this.o.file, err: (err as Error).message }, 'setpoint schedules file unreadable; pending schedules lost');
      }
    }
    this.arm();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.applying;
  }

  /** Validates and stores a schedule for one actuator (replacing its pending entries); returns what is pending. */
  async set(id: string, body: unknown): Promise<{ id: string; entries: ScheduleEntry[] }> {
    const dp = this.o.registry.get(id);
    if (!dp) throw new OutpostError('DP_UNKNOWN', `unknown datapoint "${id}"`);
    const list = (body as { entries?: unknown } | null)?.entries;
    if (!Array.isArray(list))
      throw new OutpostError('SYNC_COMMAND_INVALID', 'schedule needs "entries": [{"at": <epoch ms or ISO 8601>, "v": <value>}, …] (empty to clear)');
    const now = this.o.clock.now();
    const entries: ScheduleEntry[] = list.map((item, i) => {
      if (item === null || typeof item !== 'object') throw new OutpostError('SYNC_COMMAND_INVALID', `entries[${i}] must be an object {"at", "v"}`);
      const { at, v } = item as { at?: unknown; v?: unknown };
      const t = typeof at === 'number' ? at : typeof at === 'string' ? Date.parse(at) : NaN;
      if (!Number.isSafeInteger(t) || t < 0) throw new OutpostError('SYNC_COMMAND_INVALID', `entries[${i}].at must be epoch milliseconds or an ISO 8601 time`);
      if (t < now - LATE_GRACE_MS) throw new OutpostError('SYNC_COMMAND_INVALID', `entries[${i}].at is in the past (${new Date(t).toISOString()})`);
      try {
        // The same checks as a local setpoint: actuator, type, allowed values, range.
        return { at: t, v: validateSetpoint(dp, { v }, now).v };
      } catch (err) {
        const e = toOutpostError(err);
        throw new OutpostError(e.code, `entries[${i}]: ${e.message}`, { cause: err });
      }
    });
    entries.sort((a, b) => a.at - b.at);
    const others = [...this.pending].reduce((n, [other, e]) => (other === id ? n : n + e.length), 0);
    const max = this.o.maxEntries ?? 10_000;
    if (others + entries.length > max) throw new OutpostError('SYNC_COMMAND_INVALID', `schedule refused: more than ${max} pending entries in all`);
    if (entries.length === 0) this.pending.delete(id);
    else this.pending.set(id, entries);
    await this.save();
    this.arm();
    return { id, entries };
  }

  /** Pending entries per actuator. */
  list(): Record<string, ScheduleEntry[]> {
    return Object.fromEntries(this.pending);
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.stopped) return;
    let next = Infinity;
    for (const entries of this.pending.values()) next = Math.min(next, entries[0]!.at);
    if (next === Infinity) return;
    const delay = Math.max(0, Math.min(next - this.o.clock.now(), MAX_TIMER_MS));
    this.timer = setTimeout(() => {
      this.applying = this.applyDue().finally(() => this.arm());
    }, delay);
    this.timer.unref();
  }

  private async applyDue(): Promise<void> {
    const now = this.o.clock.now();
    let changed = false;
    for (const [id, entries] of [...this.pending]) {
      while (entries.length > 0 && entries[0]!.at <= now) {
        const entry = entries.shift()!;
        changed = true;
        if (entry.at < now - LATE_GRACE_MS) {
          this.o.log.warn({ id, at: new Date(entry.at).toISOString(), v: entry.v }, 'scheduled setpoint dropped: more than 15 min late (the gateway was down)');
          continue;
        }
        try {
          await this.o.ingest.setpoint(id, { v: entry.v }, 'schedule');
        } catch (err) {
          // Ingest.setpoint has logged the refusal (adapter down, range changed since): the
          // entry is spent either way; the next one still runs.
          if (!(err instanceof OutpostError)) throw err;
        }
      }
      if (entries.length === 0) this.pending.delete(id);
    }
    if (changed) await this.save();
  }

  /** Writes the pending entries atomically and durably (runtime/durable-file.ts). */
  private async save(): Promise<void> {
    await mkdir(dirname(this.o.file), { recursive: true });
    await writeJsonState(this.o.file, Object.fromEntries(this.pending));
  }
}
