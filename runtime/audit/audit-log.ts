import { boundFields, RefusalLimiter } from './bounds.js';
import { toOutpostError } from '../../core/errors.js';
import type { Logger } from '../log.js';
import { systemClock, type Clock } from '../../core/clock.js';
import { actorText } from './actor.js';
import { JsonlJournal } from '../jsonl-journal.js';
import type { AuditEntry, AuditInput, AuditSink } from './entry.js';

/** The outcome part of an entry for a refused or failed command. */
export function refused(err: unknown): { outcome: 'refused'; error: { code: string; message: string } } {
  const e = toOutpostError(err);
  return { outcome: 'refused', error: { code: e.code, message: e.message } };
}

export interface AuditLogOptions {
  /** `<dataDir>/audit` */
  dir: string;
  log: Logger;
  clock?: Clock;
  /** A file is rotated before it grows past this (default 2 MiB). */
  maxFileBytes?: number;
  /** Files kept, the current one included (default 2): the disk bound is their product. */
  keepFiles?: number;
  /** Newest entries kept in memory for the API (default 2,000). */
  tailSize?: number;
}

/** A longer entry keeps its identity but loses its details (a huge JSON setpoint value). */
const MAX_ENTRY_BYTES = 8 * 1024;
/** Entries waiting for the disk, at most; a stalled disk must not grow memory for ever. */
const MAX_PENDING = 10_000;
/** Key names whose values are credentials: dropped from details, whatever the caller passed. */
const SECRET_KEY = /pass(word)?$|secret|^token$|^current$|credential|authori[sz]ation|api.?key|private.?key/i;
const MAX_STRING = 500;

/** Drops secret-looking keys and shortens long strings, a few levels deep. */
function scrub(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}…` : value;
  if (value === null || typeof value !== 'object') return value;
  if (depth >= 4) return '[…]';
  if (Array.isArray(value)) return value.slice(0, 50).map((v) => scrub(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) ? '[redacted]' : scrub(v, depth + 1);
  return out;
}

/**
 * The audit trail (issue 18): append-only JSON lines in `<dir>/audit.jsonl`, rotated to
 * `audit.1.jsonl` … before a file passes `maxFileBytes`, so the disk holds at most
 * `keepFiles × maxFileBytes`. Entries are written behind the caller in batches (no fsync per
 * entry: a crash may lose the last few, a graceful `close()` loses none), and the newest
 * `tailSize` are kept in memory for the API, loaded from the files at `open()`.
 */
export class AuditLog implements AuditSink {
  private readonly clock: Clock;
  private readonly journal: JsonlJournal<AuditEntry>;
  /** Repeated refusals not recorded (RefusalLimiter): counted, and noted on the next one recorded. */
  suppressed = 0;
  private readonly refusals = new RefusalLimiter();

  constructor(o: AuditLogOptions) {
    this.clock = o.clock ?? systemClock;
    this.journal = new JsonlJournal<AuditEntry>({
      dir: o.dir,
      base: 'audit',
      what: 'audit entries',
      name: 'audit log',
      log: o.log,
      maxFileBytes: o.maxFileBytes ?? 2 * 1024 * 1024,
      keepFiles: Math.max(1, o.keepFiles ?? 2),
      tailSize: o.tailSize ?? 2_000,
      maxPending: MAX_PENDING,
      parse: (value) => {
        const entry = value as AuditEntry;
        if (typeof entry?.id !== 'number') throw new TypeError('no id');
        return entry;
      },
    });
  }

  /** Entries that never reached the disk (write failures, a full queue, records after close). */
  get dropped(): number {
    return this.journal.dropped;
  }

  /** Loads the newest entries from the files and opens the current one for appending. */
  open(): Promise<void> {
    return this.journal.open();
  }

  record(raw: AuditInput): void {
    try {
      const input = boundFields(raw);
      const by = actorText(input.actor);
      let suppressedBefore = 0;
      if (input.outcome === 'refused') {
        const admitted = this.refusals.admit(`${by}|${input.action}`, this.clock.now());
        if (admitted === undefined) {
          this.suppressed++;
          return;
        }
        suppressedBefore = admitted;
      }
      let entry: AuditEntry = { id: this.journal.takeId(), t: this.clock.now(), by, ...input, ...(suppressedBefore > 0 ? { suppressedBefore } : {}) };
      if (input.details) entry.details = scrub(input.details) as Record<string, unknown>;
      let line = JSON.stringify(entry);
      if (Buffer.byteLength(line) > MAX_ENTRY_BYTES) {
        entry = { ...entry, details: { truncated: true } };
        line = JSON.stringify(entry);
      }
      this.journal.append(entry, line);
    } catch (err) {
      // A recording must never fail the command it records.
      this.journal.lost(1, (err as Error).message);
    }
  }

  /** Resolves once every entry recorded so far is written (or counted as lost). */
  flush(): Promise<void> {
    return this.journal.flush();
  }

  /** Writes what is pending and closes the file; later records are kept in memory only. */
  close(): Promise<void> {
    return this.journal.close();
  }

  /**
   * Newest first, from the in-memory tail: at most `limit` entries older than `before`
   * (an id), of one action (`user` also matches `user.add` and the other `user.*`).
   */
  query(q: { limit: number; before?: number; action?: string }): { items: AuditEntry[]; more: boolean } {
    const items: AuditEntry[] = [];
    const prefix = q.action ? `${q.action}.` : undefined;
    for (const e of this.journal.newest()) {
      if (q.before !== undefined && e.id >= q.before) continue;
      if (q.action && e.action !== q.action && !e.action.startsWith(prefix!)) continue;
      if (items.length === q.limit) return { items, more: true };
      items.push(e);
    }
    return { items, more: false };
  }

  /** The actions in memory, for the dashboard's filter. */
  actions(): string[] {
    return [...new Set([...this.journal.newest()].map((e) => e.action))].sort();
  }
}
