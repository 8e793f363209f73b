import { mkdir, open, readFile, rename, stat, type FileHandle } from 'node:fs/promises';
import { boundFields, RefusalLimiter } from './bounds.js';
import { join } from 'node:path';
import { toOutpostError } from '../../core/errors.js';
import type { Logger } from '../log.js';
import { systemClock, type Clock } from '../../core/clock.js';
import { actorText } from './actor.js';
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

const FILE = 'audit.jsonl';
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
  private readonly maxFileBytes: number;
  private readonly keepFiles: number;
  private readonly tailSize: number;
  private readonly tail: AuditEntry[] = [];
  private nextId = 1;
  private handle: FileHandle | undefined;
  private size = 0;
  private pending: string[] = [];
  private writing: Promise<void> | undefined;
  private closed = false;
  /** A write failed (disk full): logged once until one succeeds again. */
  private failing = false;
  /** After a failed write the file may end in half a line: the next write starts a new one. */
  private brokenLine = false;
  /** Entries that never reached the disk (write failures, a full queue, records after close). */
  dropped = 0;
  /** Repeated refusals not recorded (RefusalLimiter): counted, and noted on the next one recorded. */
  suppressed = 0;
  private readonly refusals = new RefusalLimiter();

  constructor(private readonly o: AuditLogOptions) {
    this.clock = o.clock ?? systemClock;
    this.maxFileBytes = o.maxFileBytes ?? 2 * 1024 * 1024;
    this.keepFiles = Math.max(1, o.keepFiles ?? 2);
    this.tailSize = o.tailSize ?? 2_000;
  }

  private file(n: number): string {
    return join(this.o.dir, n === 0 ? FILE : `audit.${n}.jsonl`);
  }

  /** Loads the newest entries from the files and opens the current one for appending. */
  async open(): Promise<void> {
    await mkdir(this.o.dir, { recursive: true });
    let skipped = 0;
    for (let n = this.keepFiles - 1; n >= 0; n--) {
      let text: string;
      try {
        text = await readFile(this.file(n), 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      for (const line of text.split('\n')) {
        if (line === '') continue;
        try {
          const entry = JSON.parse(line) as AuditEntry;
          if (typeof entry.id !== 'number') throw new TypeError('no id');
          this.keep(entry);
          this.nextId = Math.max(this.nextId, entry.id + 1);
        } catch (err) {
          // A line cut by a crash or a full disk: the others are still good.
          if (!(err instanceof SyntaxError || err instanceof TypeError)) throw err;
          skipped++;
        }
      }
    }
    if (skipped > 0) this.o.log.warn({ skipped, dir: this.o.dir }, 'audit files hold unreadable lines (cut by a crash or a full disk); they were skipped');
    this.handle = await open(this.file(0), 'a');
    this.size = (await stat(this.file(0))).size;
  }

  private keep(entry: AuditEntry): void {
    this.tail.push(entry);
    // Trimmed in steps, not per entry: one splice per 256 entries instead of a shift each.
    if (this.tail.length > this.tailSize + 256) this.tail.splice(0, this.tail.length - this.tailSize);
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
      let entry: AuditEntry = { id: this.nextId++, t: this.clock.now(), by, ...input, ...(suppressedBefore > 0 ? { suppressedBefore } : {}) };
      if (input.details) entry.details = scrub(input.details) as Record<string, unknown>;
      let line = JSON.stringify(entry);
      if (Buffer.byteLength(line) > MAX_ENTRY_BYTES) {
        entry = { ...entry, details: { truncated: true } };
        line = JSON.stringify(entry);
      }
      this.keep(entry);
      if (this.closed || this.pending.length >= MAX_PENDING) {
        this.lost(1, this.closed ? 'the audit log is closed' : 'the audit write queue is full');
        return;
      }
      this.pending.push(line + '\n');
      this.writing ??= this.drain().finally(() => (this.writing = undefined));
    } catch (err) {
      // A recording must never fail the command it records.
      this.lost(1, (err as Error).message);
    }
  }

  private lost(entries: number, reason: string): void {
    this.dropped += entries;
    if (this.failing) return;
    this.failing = true;
    this.o.log.error({ reason, dir: this.o.dir }, 'audit entries are not being written (further losses are counted, not logged)');
  }

  /** Writes what is pending, batch by batch, rotating before a file would pass the bound. */
  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const lines = this.pending;
      this.pending = [];
      let i = 0;
      try {
        while (i < lines.length) {
          let chunk = this.brokenLine ? '\n' : '';
          let bytes = Buffer.byteLength(chunk);
          let end = i;
          for (; end < lines.length; end++) {
            const n = Buffer.byteLength(lines[end]!);
            if (this.size + bytes + n > this.maxFileBytes && (this.size > 0 || end > i)) break;
            chunk += lines[end];
            bytes += n;
          }
          if (end === i) {
            await this.rotate();
            continue;
          }
          this.handle ??= await open(this.file(0), 'a');
          await this.handle.appendFile(chunk);
          i = end;
          this.size += bytes;
          this.brokenLine = false;
          if (this.failing) {
            this.failing = false;
            this.o.log.warn({ dropped: this.dropped }, 'audit entries are written again');
          }
        }
      } catch (err) {
        this.brokenLine = true;
        this.lost(lines.length - i, (err as Error).message);
      }
    }
  }

  private async rotate(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
    for (let n = this.keepFiles - 1; n >= 1; n--) {
      try {
        await rename(this.file(n - 1), this.file(n));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    this.handle = await open(this.file(0), 'a');
    this.size = 0;
  }

  /** Resolves once every entry recorded so far is written (or counted as lost). */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }

  /** Writes what is pending and closes the file; later records are kept in memory only. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }

  /**
   * Newest first, from the in-memory tail: at most `limit` entries older than `before`
   * (an id), of one action (`user` also matches `user.add` and the other `user.*`).
   */
  query(q: { limit: number; before?: number; action?: string }): { items: AuditEntry[]; more: boolean } {
    const items: AuditEntry[] = [];
    const prefix = q.action ? `${q.action}.` : undefined;
    // The tail may hold up to 256 more between trims; the API serves exactly the newest `tailSize`.
    const first = Math.max(0, this.tail.length - this.tailSize);
    for (let i = this.tail.length - 1; i >= first; i--) {
      const e = this.tail[i]!;
      if (q.before !== undefined && e.id >= q.before) continue;
      if (q.action && e.action !== q.action && !e.action.startsWith(prefix!)) continue;
      if (items.length === q.limit) return { items, more: true };
      items.push(e);
    }
    return { items, more: false };
  }

  /** The actions in memory, for the dashboard's filter. */
  actions(): string[] {
    return [...new Set(this.tail.slice(-this.tailSize).map((e) => e.action))].sort();
  }
}
