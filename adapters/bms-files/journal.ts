import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OutpostError, isOutpostError } from '../../core/errors.js';
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

/** A point the export itself flagged (Insight `Error: ...` trend definition). */
export interface PointError {
  name: string;
  error: string;
}

/**
 * Status details that lived only in memory and were lost on every restart (so a restart
 * hid that rows had been skipped in the spring DST gap, or that columns were not imported).
 * Kept in the journal since; journals written before have none and start from zero.
 */
export interface SourceNotes {
  /** Columns no rule mapped (`unknownPoints: skip`), first seen first, at most `MAX_NOTED`. */
  unmappedPoints: string[];
  /** At most `MAX_NOTED`; an entry goes when a later import lists the point without an error. */
  pointErrors: PointError[];
  /** Rows skipped in the spring DST gap (localtime.ts), all files. */
  dstSkippedRows: number;
  /** Rows placed in the repeated autumn hour's standard time, all files. */
  dstRepeatedRows: number;
  /** The most recent file was refused (status `degraded`). */
  lastFileFailed: boolean;
}

/** What one imported file adds to the notes (importer.ts ImportResult has these fields). */
export interface FileNotes {
  unmapped: readonly string[];
  pointErrors: readonly PointError[];
  dstSkippedRows: number;
  dstRepeatedRows: number;
  /** Every point name the file had, if known: clears `pointErrors` of points now without one. */
  pointNames?: readonly string[];
}

/** Bound of the status lists: the status topic shows the first ones, the log has all. */
export const MAX_NOTED = 50;

interface JournalState {
  version: 1;
  counters: SourceCounters;
  /** By file path. */
  inProgress: Record<string, InProgress>;
  /** Absent in journals written before it existed. */
  notes?: SourceNotes;
}

const MAX_IN_PROGRESS = 1000;

const emptyNotes = (): SourceNotes => ({ unmappedPoints: [], pointErrors: [], dstSkippedRows: 0, dstRepeatedRows: 0, lastFileFailed: false });

/**
 * A small durable JSON journal in the adapter's data directory (`import-journal.json`):
 * counters, and per-file progress after stored batches. Written atomically (temp file,
 * fsync, rename, fsync of the directory) so power loss leaves the old or the new state,
 * never a torn one. During an import it is written at most every `persistEveryMs` (written
 * after every batch it cost two fsyncs per 5,000 points, ~260 for a 5 MB report), and
 * always when a file ends, leaves the drop folder or the import stops (`flush`). A restart
 * resumes a file after the last committed row written; a crash re-stores the batches after
 * it, which overwrites the same (datapoint, t) keys, and their rows are counted once, as the
 * counters are written with the progress they belong to.
 */
export class ImportJournal {
  private state: JournalState = { version: 1, counters: { files: 0, rows: 0, points: 0, gaps: 0, failures: 0 }, inProgress: {} };
  private writing: Promise<void> = Promise.resolve();
  private readonly path: string;
  private lastPersist = -Infinity;
  private dirty = false;

  constructor(
    dir: string,
    private readonly persistEveryMs = 1000,
  ) {
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
      // Journals from before the notes: the most recent outcome is the later of the two.
      const failedLast = (parsed.counters.lastFailure?.at ?? -Infinity) > (parsed.counters.lastImport?.at ?? -Infinity);
      parsed.notes = parsed.notes === undefined ? { ...emptyNotes(), lastFileFailed: failedLast } : readNotes(parsed.notes);
      this.state = parsed;
    } catch (err) {
      throw new OutpostError('INTERNAL', `import journal ${this.path} is unreadable: ${(err as Error).message}; move it away to start counting afresh`, {
        cause: err,
      });
    }
  }

  get counters(): Readonly<SourceCounters> {
    return this.state.counters;
  }

  /** Status details kept across restarts (see `SourceNotes`). */
  get notes(): Readonly<SourceNotes> {
    return (this.state.notes ??= emptyNotes());
  }

  /**
   * Adds what an imported file found; written with the next `finish` (or `flush`), so call
   * it just before `finish`.
   */
  note(file: FileNotes): void {
    const n = (this.state.notes ??= emptyNotes());
    n.dstSkippedRows += file.dstSkippedRows;
    n.dstRepeatedRows += file.dstRepeatedRows;
    for (const name of file.unmapped) if (!n.unmappedPoints.includes(name) && n.unmappedPoints.length < MAX_NOTED) n.unmappedPoints.push(name);
    if (file.pointNames) {
      const flagged = new Set(file.pointErrors.map((e) => e.name));
      const listed = new Set(file.pointNames);
      n.pointErrors = n.pointErrors.filter((e) => !listed.has(e.name) || flagged.has(e.name));
    }
    for (const e of file.pointErrors) {
      const known = n.pointErrors.find((p) => p.name === e.name);
      if (known) known.error = e.error;
      else if (n.pointErrors.length < MAX_NOTED) n.pointErrors.push({ name: e.name, error: e.error });
    }
    this.dirty = true;
  }

  /**
   * Drops unmapped point names that the rules map now (call at start with the current
   * configuration): after a rule is added, its points are imported from the next file on, and
   * a kept name would say otherwise for good. `stillUnmapped` throwing (a rule that cannot
   * map the name, `unknownPoints: fail`) keeps the name: it is not imported either.
   */
  async pruneUnmapped(stillUnmapped: (name: string) => boolean): Promise<void> {
    const n = (this.state.notes ??= emptyNotes());
    const keep = n.unmappedPoints.filter((name) => {
      try {
        return stillUnmapped(name);
      } catch (err) {
        if (!isOutpostError(err)) throw err;
        return true; // refused by the rules: still nothing stored for it
      }
    });
    if (keep.length === n.unmappedPoints.length) return;
    n.unmappedPoints = keep;
    await this.persist();
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
    if (performance.now() - this.lastPersist >= this.persistEveryMs) await this.persist();
    else this.dirty = true;
  }

  /** Writes checkpoints not yet written (an import stopped or interrupted). */
  async flush(): Promise<void> {
    if (this.dirty) await this.persist();
  }

  async finish(
    file: string,
    outcome: { ok: true; summary: NonNullable<SourceCounters['lastImport']> } | { ok: false; failure: NonNullable<SourceCounters['lastFailure']> },
  ): Promise<void> {
    delete this.state.inProgress[file];
    if (outcome.ok) {
      this.state.counters.files++;
      this.state.counters.lastImport = outcome.summary;
    } else {
      this.state.counters.failures++;
      this.state.counters.lastFailure = outcome.failure;
    }
    (this.state.notes ??= emptyNotes()).lastFileFailed = !outcome.ok;
    await this.persist();
  }

  /** Forgets progress of a file that vanished or changed. */
  async forget(file: string): Promise<void> {
    if (!(file in this.state.inProgress)) return;
    delete this.state.inProgress[file];
    await this.persist();
  }

  /** Writes the journal now (after `note` outside an import, e.g. in tests). */
  save(): Promise<void> {
    return this.persist();
  }

  private persist(): Promise<void> {
    this.dirty = false;
    this.lastPersist = performance.now();
    const snapshot = JSON.stringify(this.state);
    const run = this.writing.then(() => writeFileDurably(this.path, snapshot));
    this.writing = run.catch(() => {
      // Not written: the next flush writes the state again.
      this.dirty = true;
    });
    return run;
  }
}

/** Notes from a journal file: missing (written before they existed) or partly missing fields start empty. */
function readNotes(raw: unknown): SourceNotes {
  const n = emptyNotes();
  if (!raw || typeof raw !== 'object') return n;
  const r = raw as Partial<Record<keyof SourceNotes, unknown>>;
  if (Array.isArray(r.unmappedPoints)) n.unmappedPoints = r.unmappedPoints.filter((x): x is string => typeof x === 'string').slice(0, MAX_NOTED);
  if (Array.isArray(r.pointErrors)) {
    n.pointErrors = r.pointErrors
      .filter((x): x is PointError => !!x && typeof (x as PointError).name === 'string' && typeof (x as PointError).error === 'string')
      .slice(0, MAX_NOTED)
      .map((x) => ({ name: x.name, error: x.error }));
  }
  if (typeof r.dstSkippedRows === 'number' && r.dstSkippedRows >= 0) n.dstSkippedRows = r.dstSkippedRows;
  if (typeof r.dstRepeatedRows === 'number' && r.dstRepeatedRows >= 0) n.dstRepeatedRows = r.dstRepeatedRows;
  n.lastFileFailed = r.lastFileFailed === true;
  return n;
}
