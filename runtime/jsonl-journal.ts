import { mkdir, open, readFile, rename, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from './log.js';

export interface JsonlJournalOptions<T> {
  dir: string;
  /** Files are `<base>.jsonl` (current), `<base>.1.jsonl` … (older). */
  base: string;
  /** What the lines are, for log messages ("audit entries", "events"). */
  what: string;
  /** What the journal is, for log messages ("audit log", "event log"). */
  name: string;
  log: Logger;
  /** A file is rotated before it grows past this. */
  maxFileBytes: number;
  /** Files kept, the current one included: the disk bound is `keepFiles × maxFileBytes`. */
  keepFiles: number;
  /** Newest entries kept in memory for queries. */
  tailSize: number;
  /** Lines waiting for the disk, at most: a stalled disk must not grow memory for ever. */
  maxPending: number;
  /** An entry read back from a file, or a TypeError when the line is not one. */
  parse: (value: unknown) => T;
}

/**
 * An append-only journal of JSON lines with ids, the part the audit trail
 * (runtime/audit/audit-log.ts) and the event log (runtime/alarms/event-log.ts) share:
 * rotation before a file passes its bound, writes behind the caller in batches (no fsync per
 * line: a crash may lose the last few, a graceful `close()` loses none), losses counted and
 * logged once until writes succeed again, and the newest `tailSize` entries in memory,
 * loaded from the files at `open()`. Lines cut by a crash or a full disk are skipped.
 */
export class JsonlJournal<T extends { id: number }> {
  /** Oldest first; may hold up to 256 more than `tailSize` between trims (use `newest`). */
  private readonly tail: T[] = [];
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
  /** Entries that never reached the disk (write failures, a full queue, entries after close). */
  dropped = 0;

  constructor(private readonly o: JsonlJournalOptions<T>) {}

  private file(n: number): string {
    return join(this.o.dir, n === 0 ? `${this.o.base}.jsonl` : `${this.o.base}.${n}.jsonl`);
  }

  /** Loads the newest entries from the files and opens the current one for appending. */
  async open(): Promise<void> {
    await mkdir(this.o.dir, { recursive: true });
    let skipped = 0;
    for (let n = this.o.keepFiles - 1; n >= 0; n--) {
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
          const entry = this.o.parse(JSON.parse(line));
          this.keep(entry);
          this.nextId = Math.max(this.nextId, entry.id + 1);
        } catch (err) {
          // A line cut by a crash or a full disk: the others are still good.
          if (!(err instanceof SyntaxError || err instanceof TypeError)) throw err;
          skipped++;
        }
      }
    }
    if (skipped > 0)
      this.o.log.warn({ skipped, dir: this.o.dir }, `${this.o.name} files hold unreadable lines (cut by a crash or a full disk); they were skipped`);
    this.handle = await open(this.file(0), 'a');
    this.size = (await stat(this.file(0))).size;
  }

  /** The id the next entry gets (increasing across restarts and rotations). */
  takeId(): number {
    return this.nextId++;
  }

  /** Keeps `entry` in memory and queues `line` (its JSON) for the disk; never throws for the disk. */
  append(entry: T, line: string): void {
    this.keep(entry);
    if (this.closed || this.pending.length >= this.o.maxPending) {
      this.lost(1, this.closed ? `the ${this.o.name} is closed` : `the ${this.o.name} write queue is full`);
      return;
    }
    this.pending.push(`${line}\n`);
    this.writing ??= this.drain().finally(() => (this.writing = undefined));
  }

  /** Counts entries that will not reach the disk; logs the first loss of a run. */
  lost(entries: number, reason: string): void {
    this.dropped += entries;
    if (this.failing) return;
    this.failing = true;
    this.o.log.error({ reason, dir: this.o.dir }, `${this.o.what} are not being written (further losses are counted, not logged)`);
  }

  /** The newest `tailSize` entries in memory, newest first. */
  *newest(): Generator<T> {
    const first = Math.max(0, this.tail.length - this.o.tailSize);
    for (let i = this.tail.length - 1; i >= first; i--) yield this.tail[i]!;
  }

  private keep(entry: T): void {
    this.tail.push(entry);
    // Trimmed in steps, not per entry: one splice per 256 entries instead of a shift each.
    if (this.tail.length > this.o.tailSize + 256) this.tail.splice(0, this.tail.length - this.o.tailSize);
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
            if (this.size + bytes + n > this.o.maxFileBytes && (this.size > 0 || end > i)) break;
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
            this.o.log.warn({ dropped: this.dropped }, `${this.o.what} are written again`);
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
    for (let n = this.o.keepFiles - 1; n >= 1; n--) {
      try {
        await rename(this.file(n - 1), this.file(n));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    this.handle = await open(this.file(0), 'a');
    this.size = 0;
  }

  /** Resolves once every entry appended so far is written (or counted as lost). */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }

  /** Writes what is pending and closes the file; later entries are kept in memory only. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }
}
