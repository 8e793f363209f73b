import { open, readFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { OutpostError } from '../../core/errors.js';
import '../../storage/errors.js'; // registers the STORAGE_* codes thrown here
import { fsyncDir, writeFileDurably } from '../durable-file.js';
import type { Logger } from '../log.js';
import type { OutboxRecord } from '../../storage/store.js';

/** One record the receiver refused for good, with why. */
export interface DeadLetter {
  /** Running number, 1 for the first record ever dead-lettered here. */
  n: number;
  /** When it was set aside (epoch ms). */
  at: number;
  link: string;
  record: OutboxRecord;
  /** Short reason, e.g. `HTTP 400`. */
  reason: string;
  status?: number;
  /** The start of the receiver's answer (at most `ANSWER_CHARS`). */
  answer?: string;
  /** The record's value was too large to keep and is cut (`record.v` is a preview string). */
  truncated?: true;
}

export interface DeadLetterSummary {
  /** Entries held in the store now. */
  count: number;
  /** Records dead-lettered since the store was created (older ones beyond the bound are gone). */
  total: number;
  /** Newest first. */
  newest: DeadLetter[];
}

/** Entries kept; beyond, the oldest are dropped (the count says how many there were). */
const DEAD_LETTER_MAX_ENTRIES = 1000;
/** Characters of the receiver's answer kept per entry. */
export const ANSWER_CHARS = 500;
/** A line longer than this keeps a preview of the value instead of the value. */
const MAX_LINE_CHARS = 8 * 1024;

/**
 * Records the receiver refused permanently (`isolate.ts` found them one by one), kept so
 * an operator can see what was not delivered and why: `<dataDir>/sync/dead-letter.jsonl`,
 * one JSON entry per line, appended and fsynced before the drain cursor moves past the
 * record (the outbox deletes it soon after, so this is its only copy on the gateway).
 * Bounded: at most `maxEntries` lines of at most ~8 KiB; when full, the file is rewritten
 * atomically with the newest half.
 */
export class DeadLetterStore {
  private entries: DeadLetter[] = [];
  private total = 0;
  /** Appends and rewrites one at a time, in order. */
  private turn: Promise<void> = Promise.resolve();

  constructor(private readonly o: { file: string; log: Logger; maxEntries?: number }) {}

  private get maxEntries(): number {
    return this.o.maxEntries ?? DEAD_LETTER_MAX_ENTRIES;
  }

  async load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.o.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new OutpostError('STORAGE_OPEN_FAILED', `cannot read the dead-letter file ${this.o.file}: ${(err as Error).message}`, { cause: err });
    }
    const lines = text.split('\n');
    let damaged = 0;
    for (const line of lines) {
      if (!line) continue;
      const entry = parseEntry(line);
      if (entry) this.entries.push(entry);
      else damaged++;
    }
    this.total = this.entries.reduce((n, e) => Math.max(n, e.n), 0);
    // A kill during an append can leave a torn last line: rewrite the file so the next
    // append starts on a line of its own (it would otherwise be glued to the torn one).
    if (damaged > 0 || (text.length > 0 && !text.endsWith('\n')) || this.entries.length > this.maxEntries) {
      if (damaged > 0) this.o.log.warn({ file: this.o.file, damaged }, 'dead-letter file had unreadable lines (a write cut by a crash); they are dropped');
      this.entries = this.entries.slice(-this.maxEntries);
      await this.rewrite();
    }
  }

  summary(newest = 20): DeadLetterSummary {
    return { count: this.entries.length, total: this.total, newest: this.entries.slice(-newest).reverse() };
  }

  /** Appends entries durably; resolves once they are on disk. */
  add(items: ReadonlyArray<Omit<DeadLetter, 'n'>>): Promise<void> {
    const run = this.turn.then(async () => {
      const fresh = items.map((item) => bounded({ ...item, n: ++this.total }));
      await mkdir(dirname(this.o.file), { recursive: true });
      if (this.entries.length + fresh.length > this.maxEntries) {
        // Full: keep the newest half (and the new ones), so rewrites stay rare.
        this.entries = [...this.entries, ...fresh].slice(-Math.max(fresh.length, Math.floor(this.maxEntries / 2)));
        await this.rewrite();
        return;
      }
      const fh = await open(this.o.file, 'a');
      let created = false;
      try {
        created = (await fh.stat()).size === 0;
        await fh.writeFile(fresh.map((e) => JSON.stringify(e) + '\n').join(''));
        await fh.datasync();
      } finally {
        await fh.close();
      }
      if (created) await fsyncDir(dirname(this.o.file));
      this.entries.push(...fresh);
    });
    // The next append waits for this one whatever its outcome; the caller sees the error.
    this.turn = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private rewrite(): Promise<void> {
    return writeFileDurably(this.o.file, this.entries.map((e) => JSON.stringify(e) + '\n').join(''));
  }
}

/** An entry whose line would be too long keeps a preview of the value. */
function bounded(e: DeadLetter): DeadLetter {
  const answer = e.answer === undefined ? undefined : e.answer.slice(0, ANSWER_CHARS);
  const entry: DeadLetter = { ...e, ...(answer === undefined ? {} : { answer }) };
  const line = JSON.stringify(entry);
  if (line.length <= MAX_LINE_CHARS) return entry;
  const value = JSON.stringify(e.record.v) ?? 'undefined';
  return { ...entry, record: { ...e.record, v: `${value.slice(0, 1024)}… (${value.length} chars)` }, truncated: true };
}

function parseEntry(line: string): DeadLetter | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return undefined; // the caller counts and reports unreadable lines
  }
  const e = parsed as Partial<DeadLetter>;
  if (typeof e !== 'object' || e === null || !Number.isSafeInteger(e.n) || typeof e.record !== 'object' || e.record === null || typeof e.reason !== 'string')
    return undefined;
  return e as DeadLetter;
}
