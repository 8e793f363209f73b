import { createReadStream } from 'node:fs';
import { OutpostError, isOutpostError, toOutpostError } from '../../core/errors.js';
import './errors.js';
import { MAX_FUTURE_MS, type DatapointInput } from '../../core/datapoint.js';
import { readLines } from './lines.js';
import { fileError, type ReportParser, type ReportSink, type SourcePoint } from './report.js';
import type { PointMapper } from './mapping.js';

type Point = { id: string; v: number | null; t: number; q?: 'bad' };

/** Where an import stores things: the adapter context in production, the same in tests and bench. */
export interface ImportTarget {
  register(defs: DatapointInput[]): Promise<void>;
  publishValues(points: ReadonlyArray<Point>): Promise<number>;
  now(): number;
}

export interface Progress {
  committedLine: number;
  rows: number;
  points: number;
  gaps: number;
}

export interface ImportOptions {
  path: string;
  parser: ReportParser;
  mapper: PointMapper;
  target: ImportTarget;
  /** Datapoint definition for a mapped point (description, meta). */
  describe(point: SourcePoint, mapped: { id: string; unit?: string; description?: string }): DatapointInput;
  /** Points per durable write; bounds memory whatever the file size. */
  batchSize: number;
  /** Rows up to this line were stored by an earlier, interrupted run. */
  resume?: Progress;
  /** Called after each stored batch with the totals and what this batch added. */
  checkpoint(progress: Progress, delta: { rows: number; points: number; gaps: number }): Promise<void>;
  signal?: AbortSignal;
  /** Ids already registered by this adapter run (shared across files). */
  registered: Set<string>;
  /** Filled while importing, so a refused file's history entry can say how far it got. */
  seen?: { datapoints: number };
}

export interface ImportResult extends Progress {
  lines: number;
  /** Distinct datapoints the file's columns mapped to. */
  datapoints: number;
  /** Columns no rule mapped (with `unknownPoints: skip`). */
  unmapped: string[];
  /** Points the export itself flagged (`Error: ...` trend definitions). */
  pointErrors: Array<{ name: string; error: string }>;
  dstSkippedRows: number;
  dstRepeatedRows: number;
}

const MIN_TIME = Date.UTC(2000, 0, 1);

/**
 * Streams one export file into storage: lines → parser → mapping → bounded batches →
 * `publishValues` → journal checkpoint. A defect stops the import at its line with a
 * `BMS_FILE_INVALID` error naming the line; rows before it are stored (re-importing the
 * fixed file overwrites them with the same values).
 */
export async function importFile(o: ImportOptions): Promise<ImportResult> {
  const resumeAfter = o.resume?.committedLine ?? 0;
  const total: Progress = o.resume ? { ...o.resume } : { committedLine: 0, rows: 0, points: 0, gaps: 0 };
  const ids: Array<string | undefined> = [];
  const idOwner = new Map<string, string>();
  const unmapped: string[] = [];
  const pointErrors: Array<{ name: string; error: string }> = [];
  const pendingDefs: DatapointInput[] = [];
  const now = o.target.now();

  let batch: Point[] = [];
  let completeLen = 0;
  let completeLine = resumeAfter;
  let rowGaps = 0;
  let completeGaps = 0;
  let rowT = 0;
  let skipping = false;
  let rowsInBatch = 0;
  let lineNo = 0;

  const sink: ReportSink = {
    point(index, point) {
      if (point.error) pointErrors.push({ name: point.name, error: point.error });
      const mapped = o.mapper.map(point.name);
      if (!mapped) {
        unmapped.push(point.name);
        return;
      }
      const other = idOwner.get(mapped.id);
      if (other !== undefined)
        throw fileError(lineNo, `points "${other}" and "${point.name}" both map to datapoint ${mapped.id}; make the mapping rules distinguish them`);
      idOwner.set(mapped.id, point.name);
      ids[index] = mapped.id;
      if (o.seen) o.seen.datapoints = idOwner.size;
      if (!o.registered.has(mapped.id)) pendingDefs.push(o.describe(point, mapped));
    },
    row(line, t) {
      if (t < MIN_TIME || t > now + MAX_FUTURE_MS) {
        throw fileError(line, `time ${new Date(t).toISOString()} is before 2000 or more than a day in the future (wrong date or time zone?)`);
      }
      rowT = t;
      skipping = line <= resumeAfter;
    },
    sample(index, v) {
      if (skipping) return;
      const id = ids[index];
      if (id === undefined) return;
      if (v === null) {
        batch.push({ id, v: null, t: rowT, q: 'bad' });
        rowGaps++;
      } else batch.push({ id, v, t: rowT });
    },
    rowEnd(line) {
      if (skipping) return;
      completeLen = batch.length;
      completeLine = line;
      completeGaps += rowGaps;
      rowGaps = 0;
      rowsInBatch++;
    },
  };

  const registerPending = async (): Promise<void> => {
    if (pendingDefs.length === 0) return;
    const defs = pendingDefs.splice(0);
    await o.target.register(defs);
    for (const d of defs) o.registered.add(d.id);
  };

  /**
   * Batches handed to storage and not yet journalled: at most two, while the next one is
   * parsed (memory holds at most three). Storage keeps their order and prepares the second
   * while the first is written; the journal records each once it and every batch before it
   * are stored, in file order. `inFlight` settles after the newest, `older` after the one before.
   */
  let inFlight: Promise<void> = Promise.resolve();
  let older: Promise<void> = Promise.resolve();

  /** Hands the complete rows of the batch to storage; the journal records them once stored. */
  const submit = (): void => {
    const points = batch.length === completeLen ? batch : batch.slice(0, completeLen);
    const d = { rows: rowsInBatch, points: points.length, gaps: completeGaps };
    const line = completeLine;
    batch = [];
    completeLen = 0;
    rowGaps = 0;
    rowsInBatch = 0;
    completeGaps = 0;
    if (points.length === 0 && d.rows === 0) return;
    const stored = points.length > 0 ? o.target.publishValues(points) : Promise.resolve(0);
    const previous = inFlight;
    const run = (async () => {
      // Settles only once both have: a failed batch before never leaves this one's write behind.
      const [before, own] = await Promise.allSettled([previous, stored]);
      if (before.status === 'rejected') throw before.reason;
      if (own.status === 'rejected') throw own.reason;
      total.rows += d.rows;
      total.points += d.points;
      total.gaps += d.gaps;
      total.committedLine = line;
      await o.checkpoint({ ...total }, d);
    })();
    // Observed by a later `await`; this only keeps it from counting as unhandled meanwhile.
    run.catch(() => undefined);
    older = inFlight;
    inFlight = run;
  };

  const stream = createReadStream(o.path, { highWaterMark: 256 * 1024 });
  try {
    for await (const text of readLines(stream)) {
      lineNo++;
      if (o.signal?.aborted) throw o.signal.reason ?? new Error('aborted');
      o.parser.line(text, lineNo, sink);
      if (pendingDefs.length > 0) await registerPending();
      if (completeLen >= o.batchSize) {
        await older;
        submit();
      }
    }
    try {
      o.parser.end(lineNo);
    } catch (err) {
      // The file ended before its trailer or header: cut off, or still being written (check.ts).
      if (isOutpostError(err) && err.code === 'BMS_FILE_INVALID')
        throw new OutpostError(err.code, err.message, { cause: err, details: { ...(err.details as object), atEnd: true } });
      throw err;
    }
    await registerPending();
    await older;
    submit();
    await inFlight;
  } catch (err) {
    const e = err === o.signal?.reason ? err : atLine(err, lineNo);
    // Keep what was valid before the defect (and never after a storage failure or a stop).
    if (isOutpostError(e) && !e.retryable && !o.signal?.aborted) {
      await inFlight;
      await registerPending();
      submit();
      await inFlight;
    }
    throw e;
  } finally {
    stream.destroy();
    // Never return (and let the file be moved) while a batch is still being written.
    await inFlight.catch(() => undefined);
  }
  return {
    ...total,
    lines: lineNo,
    datapoints: idOwner.size,
    unmapped,
    pointErrors,
    dstSkippedRows: o.parser.stats.dstSkippedRows,
    dstRepeatedRows: o.parser.stats.dstRepeatedRows,
  };
}

/** Mapping and validation errors raised inside a parser callback get the line they belong to. */
function atLine(err: unknown, line: number): unknown {
  if (!(err instanceof OutpostError)) {
    if ((err as NodeJS.ErrnoException)?.code) return err; // I/O error: retry later
    return toOutpostError(err);
  }
  if (err.code === 'BMS_FILE_INVALID' || err.retryable) return err;
  return new OutpostError(err.code, `line ${line}: ${err.message}`, { cause: err, details: { line, reason: err.message } });
}
