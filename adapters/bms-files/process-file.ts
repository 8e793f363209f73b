// One stable file's way through a source: quarantine check, pass 1 (check.ts), pass 2
// (importer.ts), then archive or refuse, with history, journal and attempts kept in step.
// Apart from index.ts, which wires the source (watchers, upload route, status), because this
// is the part that decides what happens to a file and is read on its own.
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { AdapterContext } from '../../runtime/adapter.js';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import './errors.js';
import { AlcParser, type AlcCatalogue } from './alc-webctrl.js';
import type { ImportHistory } from './history.js';
import { importFile, type ImportOptions, type ImportTarget, type Progress } from './importer.js';
import { checkFile } from './check.js';
import { RetentionCheck, type RetentionWarning } from '../../storage/retention.js';
import { versionKey, type ImportAttempts } from './attempts.js';
import type { ImportJournal } from './journal.js';
import { writeFileDurably } from '../../runtime/durable-file.js';
import type { PointMapper } from './mapping.js';
import type { ReportParser } from './report.js';
import { forgetOriginalName, originalName } from './upload.js';
import { decideDateOrder, type DateOrderSource } from './date-order.js';
import type { SlashDateOrder } from './timestamps.js';
import { moveInto, moveToFailed, type StableFile } from './watcher.js';
import type { BmsFilesOptions } from './config.js';

/** Per-source status detail (also what /api/adapters shows). */
export interface Live {
  queued: number;
  importing: string | null;
}

/** A dropped file that looked cut off: not parsed again until its size or mtime changes. */
export interface IncompleteFile {
  size: number;
  mtimeMs: number;
  warned: boolean;
}

/** An archived drop-folder file watched for rows appended after its import. */
export interface ArchivedFile {
  archived: string;
  name: string;
  size: number;
  mtimeMs: number;
  until: number;
}

/** Where a file goes when it is done: the drop folder's archive/failed, or the upload spool's. */
export interface FileDirs {
  archive: string;
  failed: string;
  spool?: boolean;
}

/** The source's state and services, all set up by index.ts at start. */
export interface FileProcessorDeps {
  ctx: AdapterContext;
  options: BmsFilesOptions;
  instanceId: string;
  signal: AbortSignal;
  /** One import at a time per source (index.ts; the archive check runs under it too). */
  serial: <T>(fn: () => Promise<T>) => Promise<T>;
  journal: ImportJournal;
  attempts: ImportAttempts;
  history: ImportHistory;
  mapper: PointMapper;
  target: ImportTarget;
  describe: ImportOptions['describe'];
  registered: Set<string>;
  catalogue: AlcCatalogue;
  cataloguePath: string;
  dateSource: DateOrderSource;
  makeParser: (dateOrder?: SlashDateOrder) => ReportParser;
  incomplete: Map<string, IncompleteFile>;
  archivedWatch: ArchivedFile[];
  live: Live;
  spoolPending: Set<string>;
  publishStatus: () => void;
}

/** The source's `processFile(file, dirs)`: queued behind the import running, if any. */
export function makeFileProcessor(deps: FileProcessorDeps): (file: StableFile, dirs: FileDirs) => Promise<void> {
  const {
    ctx,
    options,
    instanceId,
    signal,
    serial,
    journal,
    attempts,
    history,
    mapper,
    target,
    describe,
    registered,
    catalogue,
    cataloguePath,
    dateSource,
    makeParser,
    incomplete,
    archivedWatch,
    live,
    spoolPending,
    publishStatus,
  } = deps;

  /** Refuses a file: failed/ with `.error.txt`, history, counters. */
  const refuse = async (
    file: StableFile,
    dirs: { failed: string; spool?: boolean },
    shownName: string,
    startedAt: number,
    stored: Progress,
    datapoints: number,
    e: OutpostError,
  ): Promise<void> => {
    const line = (e.details as { line?: number } | undefined)?.line;
    const reason = (e.details as { reason?: string } | undefined)?.reason ?? e.message;
    await journal.flush();
    const moved = await moveToFailed(file.path, dirs.failed, ctx.clock.now(), { line: line || undefined, reason, source: instanceId });
    const failedAt = ctx.clock.now();
    // The same line and reason as the `.error.txt` beside the file.
    await history.add({
      status: 'failed',
      file: shownName,
      storedAs: basename(moved),
      size: file.size,
      at: failedAt,
      startedAt,
      ms: failedAt - startedAt,
      rows: stored.rows,
      points: stored.points,
      gaps: stored.gaps,
      datapoints,
      ...(line ? { line } : {}),
      reason,
    });
    if (dirs.spool) await forgetOriginalName(file.path);
    await journal.finish(file.path, { ok: false, failure: { file: shownName, at: ctx.clock.now(), reason: e.message } });
    ctx.log.warn({ file: file.name, code: e.code, reason: e.message, movedTo: moved }, 'BMS file refused');
  };

  const processFile = (file: StableFile, dirs: FileDirs): Promise<void> =>
    serial(async () => {
      if (signal.aborted) return;
      // A dropped file that looked cut off and has not changed since: still waiting for its writer.
      const waiting = incomplete.get(file.path);
      if (!dirs.spool && waiting && waiting.size === file.size && waiting.mtimeMs === file.mtimeMs && ctx.clock.now() - file.mtimeMs < options.completeWithinMs)
        return;
      const key = versionKey(file);
      // Uploads: the name as the client sent it (upload.ts keeps it beside the spooled file).
      const shownName = dirs.spool ? await originalName(file.path) : file.name;
      if (attempts.unfinished(key) >= attempts.max) {
        const e = new OutpostError(
          'BMS_FILE_INVALID',
          `quarantined: ${attempts.max} imports of this file never finished (the gateway stopped or died during each, e.g. out of memory); it is not tried again`,
          {
            details: {
              reason: `quarantined: ${attempts.max} imports of this file never finished (the gateway stopped or died during each, e.g. out of memory); it is not tried again`,
            },
          },
        );
        await refuse(file, dirs, shownName, ctx.clock.now(), { committedLine: 0, rows: 0, points: 0, gaps: 0 }, 0, e);
        await attempts.end(key);
        spoolPending.delete(file.path);
        publishStatus();
        return;
      }
      // Counted before any work: an attempt the process does not survive stays counted.
      await attempts.begin(key);
      let resume = journal.progress(file.path);
      if (resume && (resume.size !== file.size || resume.mtimeMs !== file.mtimeMs)) {
        await journal.forget(file.path);
        resume = undefined;
      }
      let parser = makeParser();
      const started = ctx.clock.now();
      let stored: Progress = resume
        ? { committedLine: resume.committedLine, rows: resume.rows, points: resume.points, gaps: resume.gaps }
        : { committedLine: 0, rows: 0, points: 0, gaps: 0 };
      const seen = { datapoints: 0 };
      live.importing = shownName;
      publishStatus();
      try {
        // Pass 1: the whole file, nothing stored (check.ts). A defect refuses it whole;
        // a file that looks cut off is waited for (drop folder) or refused (upload).
        // Readings the next retention pass would delete (storage/retention.ts): said before anything is stored.
        const retentionCheck =
          ctx.retention &&
          new RetentionCheck(ctx.retention, (id) => ctx.datapoints.get(id) ?? { retention: { rawDays: options.retentionRawDays } }, ctx.clock.now());
        // Day/month order of slash dates, from the whole file (date-order.ts); refuses ambiguous or mixed dates.
        const dateOrder = await decideDateOrder(file.path, dateSource, signal);
        parser = makeParser(dateOrder);
        await checkFile({
          path: file.path,
          parser: makeParser(dateOrder),
          mapper,
          describe,
          batchSize: options.batchSize,
          signal,
          seen,
          now: () => ctx.clock.now(),
          onPoints: (points) => retentionCheck?.add(points),
        });
        const retentionWarning = retentionCheck?.message();
        if (retentionWarning) ctx.log.warn({ file: file.name, datapoints: retentionCheck!.warnings.slice(0, 20) }, retentionWarning);
        incomplete.delete(file.path);
        const result = await importFile({
          path: file.path,
          parser,
          mapper,
          target,
          describe,
          batchSize: options.batchSize,
          resume: resume && { committedLine: resume.committedLine, rows: resume.rows, points: resume.points, gaps: resume.gaps },
          registered,
          signal,
          seen,
          checkpoint: async (p, delta) => {
            stored = p;
            await journal.checkpoint(file.path, { size: file.size, mtimeMs: file.mtimeMs, startedAt: resume?.startedAt ?? started, ...p }, delta);
            publishStatus();
          },
        });
        if (parser instanceof AlcParser && parser.isPointsList) {
          catalogue.add(parser.catalogue);
          await writeFileDurably(cataloguePath, JSON.stringify(catalogue.entries()));
        }
        journal.note(result);
        // Counters of the last batches before the file leaves the drop folder: once archived it is never counted again.
        await journal.flush();
        // A writer that went on while the file was imported: not archived; imported again (idempotently) once stable.
        const after = await stat(file.path);
        if (after.size !== file.size || after.mtimeMs !== file.mtimeMs) {
          await journal.forget(file.path);
          await attempts.end(key, true);
          ctx.log.warn({ file: file.name }, 'BMS file changed while it was imported; it is imported again once it stops changing');
          return;
        }
        const archived = await moveInto(file.path, dirs.archive, ctx.clock.now());
        if (!dirs.spool && options.appendWatchMs > 0) {
          const st = await stat(archived);
          archivedWatch.push({ archived, name: file.name, size: st.size, mtimeMs: st.mtimeMs, until: ctx.clock.now() + options.appendWatchMs });
          if (archivedWatch.length > 100) archivedWatch.shift();
        }
        // One clock reading for the end, so `at - ms === startedAt` holds in the history.
        const startedAt = resume?.startedAt ?? started;
        const at = ctx.clock.now();
        const ms = at - startedAt;
        // History before the journal: a crash in between re-imports nothing (the file is
        // archived) and at worst leaves the counters one file short, never the history.
        await history.add({
          status: 'imported',
          file: shownName,
          storedAs: basename(archived),
          size: file.size,
          at,
          startedAt,
          ms,
          rows: result.rows,
          points: result.points,
          gaps: result.gaps,
          datapoints: result.datapoints,
          ...(retentionWarning ? { warning: retentionWarning } : {}),
        });
        if (retentionWarning) recordRetentionEvent(ctx, shownName, basename(archived), retentionWarning, retentionCheck!.warnings);
        if (dirs.spool) await forgetOriginalName(file.path);
        await journal.finish(file.path, { ok: true, summary: { file: shownName, at, rows: result.rows, points: result.points, gaps: result.gaps, ms } });
        await attempts.end(key);
        ctx.log.info(
          {
            file: file.name,
            rows: result.rows,
            points: result.points,
            gaps: result.gaps,
            ms,
            resumedAfterLine: resume?.committedLine,
            unmapped: result.unmapped.length || undefined,
            pointsList: parser instanceof AlcParser && parser.isPointsList ? parser.catalogue.length : undefined,
          },
          'BMS file imported',
        );
      } catch (err) {
        if (signal.aborted) {
          // Stopped mid-import: the journal resumes it on the next start.
          await journal.flush();
          await attempts.end(key, true);
          return;
        }
        const e = toOutpostError(err);
        const transient = !(err instanceof OutpostError) ? Boolean((err as NodeJS.ErrnoException)?.code) : e.retryable;
        if (transient) {
          await journal.flush();
          await attempts.end(key, true);
          ctx.log.warn({ file: file.name, code: e.code, reason: e.message }, 'BMS file import interrupted; retrying on the next poll');
          throw err;
        }
        if (e.code === 'BMS_FILE_INCOMPLETE' && !dirs.spool && ctx.clock.now() - file.mtimeMs < options.completeWithinMs) {
          // Nothing stored: the writer may still be at work. Refused only if it stays like this.
          const seenBefore = incomplete.get(file.path);
          incomplete.set(file.path, { size: file.size, mtimeMs: file.mtimeMs, warned: true });
          if (!seenBefore)
            ctx.log.info(
              { file: file.name, reason: e.message, refusedAfterSeconds: Math.round(options.completeWithinMs / 1000) },
              'BMS file looks cut off or still being written; waiting for the rest',
            );
          await attempts.end(key, true);
          return;
        }
        incomplete.delete(file.path);
        const refused =
          e.code === 'BMS_FILE_INCOMPLETE'
            ? new OutpostError('BMS_FILE_INVALID', e.message, {
                cause: e,
                details: {
                  ...(e.details as object),
                  reason: `${(e.details as { reason?: string }).reason ?? e.message}${dirs.spool ? '' : ` (unchanged for ${Math.round(options.completeWithinMs / 1000)} s)`}; nothing was stored`,
                },
              })
            : e;
        await refuse(file, dirs, shownName, resume?.startedAt ?? started, stored, seen.datapoints, refused);
        await attempts.end(key);
      } finally {
        live.importing = null;
        spoolPending.delete(file.path);
        publishStatus();
      }
    });
  return processFile;
}

/** Datapoints named in the event's data: the sink keeps at most a few kB of it (runtime/alarms/event-log.ts). */
const EVENT_DATAPOINTS = 10;

/**
 * The retention warning of an imported file in the gateway's event log (core/events.ts; the
 * Alarms page lists it), beside the import history's `warning`: readings the next retention
 * pass deletes are worth a look by whoever watches the event log, not only the Imports page.
 * Without the events service (tests, a gateway without alarms) nothing is recorded.
 */
function recordRetentionEvent(ctx: AdapterContext, file: string, storedAs: string, warning: string, datapoints: RetentionWarning[]): void {
  const sink = ctx.services.get('events', 'gateway');
  if (!sink) return;
  try {
    sink.record({
      source: ctx.id,
      kind: 'import.retention',
      severity: 'warning',
      message: `${file} imported: ${warning}`,
      data: {
        file,
        storedAs,
        datapoints: datapoints.slice(0, EVENT_DATAPOINTS).map((w) => ({ id: w.id, rawDays: w.rawDays, readings: w.readings, oldest: w.oldest })),
      },
    });
  } catch (err) {
    // The import is done and its history written: a failing event log does not undo it.
    ctx.log.warn({ file, reason: (err as Error).message }, 'retention warning not recorded in the event log');
  }
}
