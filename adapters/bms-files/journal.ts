import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OutpostError } from '../../runtime/errors.js';
import { writeFileDurably } from '../../runtime/durable-file.js';

/** Counters of one source, shown on the status topic and kept across restarts. */
export interface SourceCounters {
  /** Files imported completely (including points lists). */
  files: number;
  /** Data rows stored. */
  rows: number;
  /** Points stored, gaps included. */
  points: number;
  /** Gaps stored (`No Data`, `Data Loss`) as `v: null, q: "bad"`. */
  gaps: number;
  /** Files moved to failed/. */
  failures: number;
  lastImport?: { file: string; at: number; rows: number; points: number; gaps: number; ms: number };
  lastFailure?: { file: string; at: number; reason: string };
}

/** Progress of a file being imported: rows up to `committedLine` are durable. */
export interface InProgress {
  /** Identity of the file version, so an edited file starts over. */
  size: number;
  mtimeMs: number;
  committedLine: number;
  rows: number;
  points: number;
  gaps: number;
  startedAt: number;
}

interface JournalState {
  version: 1;
  counters: SourceCounters;
  /** By file path. */
  inProgress: Record<string, InProgress>;
}

const MAX_IN_PROGRESS = 1000;

/**
 * A small durable JSON journal in the adapter's data directory (`import-journal.json`):
 * counters, and per-file progress written after every stored batch. Written atomically
 * (temp file, fsync, rename, fsync of the directory) so power loss leaves the old or the
 * new state, never a torn one. A restart resumes a file after its last committed row;
 * a crash between a stored batch and its journal entry re-stores that one batch, which
 * overwrites the same (datapoint, t) keys and so changes nothing but the row counters.
 */
export class ImportJournal {
  private state: JournalState = { version: 1, counters: { files: 0, rows: 0, points: 0, gaps: 0, failures: 0 }, inProgress: {} };
  private writing: Promise<void> = Promise.resolve();
  private readonly path: string;

  constructor(dir: string) {
    this.path = join(dir, 'import-journal.json');
  }

  async load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    try {
      const parsed = JSON.parse(text) as JournalState;
      if (parsed.version !== 1 || typeof parsed.counters !== 'object' || typeof parsed.inProgress !== 'object') throw new Error('unknown journal layout');
      this.state = parsed;
    } catch (err) {
      throw new OutpostError('INTERNAL', `import journal ${this.path} is unreadable: ${(err as Error).message}; move it away to start counting afresh`, { cause: err });
    }
  }

  get counters(): Readonly<SourceCounters> {
    return this.state.counters;
  }

  progress(file: string): InProgress | undefined {
    return this.state.inProgress[file];
  }

  async checkpoint(file: string, progress: InProgress, delta: { rows: number; points: number; gaps: number }): Promise<void> {
    const c = this.state.counters;
    c.rows += delta.rows;
    c.points += delta.points;
    c.gaps += delta.gaps;
    const keys = Object.keys(this.state.inProgress);
    if (!(file in this.state.inProgress) && keys.length >= MAX_IN_PROGRESS) delete this.state.inProgress[keys[0]!];
    this.state.inProgress[file] = { ...progress };
    await this.persist();
  }

  async finish(file: string, outcome: { ok: true; summary: NonNullable<SourceCounters['lastImport']> } | { ok: false; failure: NonNullable<SourceCounters['lastFailure']> }): Promise<void> {
    delete this.state.inProgress[file];
    if (outcome.ok) {
      this.state.counters.files++;
      this.state.counters.lastImport = outcome.summary;
    } else {
      this.state.counters.failures++;
      this.state.counters.lastFailure = outcome.failure;
    }
    await this.persist();
  }

  /** Forgets progress of a file that vanished or changed. */
  async forget(file: string): Promise<void> {
    if (!(file in this.state.inProgress)) return;
    delete this.state.inProgress[file];
    await this.persist();
  }

  private persist(): Promise<void> {
    const snapshot = JSON.stringify(this.state);
    const run = this.writing.then(() => writeFileDurably(this.path, snapshot));
    this.writing = run.catch(() => undefined);
    return run;
  }
}
