import { z } from 'zod';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { defineAdapter, type AdapterContext } from '../../runtime/adapter.js';
import { OutpostError, isOutpostError, toOutpostError } from '../../core/errors.js';
import type { DatapointInput } from '../../core/datapoint.js';
import { AlcCatalogue, AlcParser, alcOptionsSchema, type AlcPointInfo } from './alc-webctrl.js';
import { ImportHistory, mountHistoryRoute } from './history.js';
import { importFile, type ImportTarget, type Progress } from './importer.js';
import { checkFile } from './check.js';
import { RetentionCheck } from '../../storage/retention.js';
import { ImportAttempts, versionKey } from './attempts.js';
import { ImportJournal } from './journal.js';
import { writeFileDurably } from '../../runtime/durable-file.js';
import { PointMapper, pointRuleSchema } from './mapping.js';
import type { ReportParser, SourcePoint } from './report.js';
import { InsightParser } from './siemens-insight.js';
import { runInsightSimulator } from './simulator.js';
import { forgetOriginalName, listSpooled, mountUpload, originalName } from './upload.js';
import { decideDateOrder, type DateOrderSource } from './date-order.js';
import type { SlashDateOrder } from './timestamps.js';
import { timezoneSchema } from '../../runtime/config/timezone.js';
import { DropFolderWatcher, moveInto, moveToFailed, type StableFile } from './watcher.js';

const timezone = timezoneSchema;

const FORMATS = { 'siemens-insight': 'siemens', 'alc-webctrl': 'alc' } as const;
type Format = keyof typeof FORMATS;

/** Points per durable write unless configured (`batchSize`); the bench stores at this size too. */
export const DEFAULT_BATCH_SIZE = 50_000;

const schema = z.strictObject({
  /** Which export this source receives. */
  format: z.enum(['siemens-insight', 'alc-webctrl']),
  /** Zone of the local times in the files; defaults to gateway.timezone. */
  timezone: timezone.optional(),
  /** Folder the BMS exports into (relative paths are under the gateway's data directory). */
  dropDir: z.string().min(1).optional(),
  /** Where imported files go; default `<dropDir>/archive`. */
  archiveDir: z.string().min(1).optional(),
  /** Where refused files go with `<name>.error.txt`; default `<dropDir>/failed`. */
  failedDir: z.string().min(1).optional(),
  pollMs: z.number().int().min(20).max(60_000).default(1000),
  /** Size and mtime must stay unchanged this long before a file is read. */
  stableMs: z.number().int().min(0).max(600_000).default(2000),
  /**
   * A dropped file that looks cut off (no `End of Report`, no line break after its last row)
   * is waited for this long after its last change (a writer still at work), then refused.
   */
  completeWithinMs: z.number().int().min(0).max(86_400_000).default(600_000),
  /**
   * Archived files are watched this long for rows appended after the import (a writer that
   * paused longer than `stableMs`); one that grows goes back to the drop folder and is imported whole.
   */
  appendWatchMs: z.number().int().min(0).max(86_400_000).default(600_000),
  /** Imports that never finished (the gateway died during each) before the file is quarantined in failed/. */
  maxAttempts: z.number().int().min(1).max(100).default(3),
  /**
   * Points per durable write (bounds memory: at most two batches are held). Larger batches
   * cost storage less per point: a 650,000-point report imports ~1.5× faster at 50,000 than
   * at 5,000 (bench/README.md), with ~40 MB more heap at its peak.
   */
  batchSize: z.number().int().min(100).max(50_000).default(DEFAULT_BATCH_SIZE),
  upload: z
    .strictObject({
      /** Default `/upload/siemens` or `/upload/alc`; set it for a second instance of the same format. */
      path: z.string().regex(/^\/[A-Za-z0-9/_-]+$/, 'expected a path such as /upload/siemens').optional(),
      /** `sha256:<hex>` hashes from `outpost hash-token`. */
      tokenHashes: z.array(z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 hex> from `outpost hash-token`')).min(1),
      maxBytes: z.number().int().min(1024).max(1024 * 1024 * 1024).default(50 * 1024 * 1024),
      maxQueued: z.number().int().min(1).max(10_000).default(100),
    })
    .optional(),
  /** BMS point name → datapoint id rules, first match wins. */
  points: z.array(pointRuleSchema).default([]),
  /** Points no rule maps: register as `<idPrefix>.<name>`, skip, or refuse the file. */
  unknownPoints: z.enum(['register', 'skip', 'fail']).default('register'),
  /** Prefix of auto-registered ids; default the instance id. */
  idPrefix: z.string().regex(/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/).optional(),
  /** Extra text states → numbers (ON/OFF built in), e.g. `{ OCC: 1, UNOCC: 0 }`. */
  states: z.record(z.string().min(1), z.number()).default({}),
  /**
   * Days the raw readings of this source's datapoints are kept (set on every datapoint it
   * registers); null, the default, keeps imported history for ever. A matching
   * `storage.retention.rules` pattern wins over it (storage/retention.ts); rollups follow
   * `storage.retention.rollupDays`.
   */
  retentionRawDays: z.number().positive().nullable().default(null),
  /** ALC trend CSV layout (format alc-webctrl). */
  alc: alcOptionsSchema.prefault({}),
  /** ALC points-list export(s) read at start for point metadata. */
  pointsLists: z.array(z.string().min(1)).default([]),
  /** Writes simulated Insight reports into dropDir (demo). */
  simulator: z
    .strictObject({
      everyMs: z.number().int().min(1000).max(86_400_000).default(60_000),
      points: z.number().int().min(1).max(2000).default(24),
      intervalMinutes: z.number().int().min(1).max(60).default(15),
      rows: z.number().int().min(1).max(10_000).default(8),
    })
    .optional(),
});

export type BmsFilesOptions = z.output<typeof schema>;

/** Per-source status detail (also what /api/adapters shows). */
interface Live {
  queued: number;
  importing: string | null;
}

/**
 * Building-automation trend exports (Siemens Insight, ALC WebCTRL) from a drop folder and
 * by HTTP upload: streamed, mapped to datapoints, stored idempotently, then archived.
 */
export default defineAdapter({
  type: 'bms-files',
  description: 'Siemens Insight and ALC WebCTRL trend exports from a drop folder or HTTP upload',
  schema,
  create(options, { id: instanceId }) {
    const format = options.format as Format;
    let stopController: AbortController | undefined;
    const tasks: Promise<void>[] = [];

    return {
      async start(ctx: AdapterContext) {
        const controller = new AbortController();
        stopController = controller;
        const signal = AbortSignal.any([ctx.signal, controller.signal]);
        const timeZone = options.timezone ?? ctx.gateway.timezone;
        const base = resolve(ctx.dataDir, '..', '..');
        const abs = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
        const dropDir = options.dropDir ? abs(options.dropDir) : undefined;
        const archiveDir = options.archiveDir ? abs(options.archiveDir) : dropDir && join(dropDir, 'archive');
        const failedDir = options.failedDir ? abs(options.failedDir) : dropDir && join(dropDir, 'failed');
        const spoolDir = join(ctx.dataDir, 'spool');
        const uploadPath = options.upload ? (options.upload.path ?? `/upload/${FORMATS[format]}`) : undefined;
        const mapper = new PointMapper(options.points, options.unknownPoints, options.idPrefix ?? instanceId);
        const journal = new ImportJournal(ctx.dataDir);
        await journal.load();
        // Unmapped names kept from before that the rules map now (a rule was added) are imported from now on.
        await journal.pruneUnmapped((name) => mapper.map(name) === null);
        const attempts = new ImportAttempts(ctx.dataDir, options.maxAttempts);
        await attempts.load();
        /** Dropped files that looked cut off, by path: not parsed again until they change. */
        const incomplete = new Map<string, { size: number; mtimeMs: number; warned: boolean }>();
        /** Recently archived drop-folder files, watched for rows appended after the import (bounded). */
        const archivedWatch: Array<{ archived: string; name: string; size: number; mtimeMs: number; until: number }> = [];
        const history = new ImportHistory(ctx.dataDir);
        const dropped = await history.load();
        if (dropped > 0) ctx.log.warn({ dropped, path: history.path }, 'import history had unreadable lines (torn by a crash?); they were dropped');
        mountHistoryRoute(ctx.http.router, instanceId, history);
        const catalogue = new AlcCatalogue();
        const cataloguePath = join(ctx.dataDir, 'alc-points.json');
        if (format === 'alc-webctrl') await loadCatalogue(catalogue, cataloguePath, options.pointsLists.map(abs), timeZone, ctx);
        const registered = new Set<string>();
        // A changed `retentionRawDays` applies to the series imported before, not only to the next file's.
        const stale = ctx.datapoints.list().filter((d) => d.adapter === ctx.id && (d.retention?.rawDays ?? null) !== options.retentionRawDays);
        if (stale.length > 0) await ctx.datapoints.register(stale.map(({ adapter: _adapter, ...d }) => ({ ...d, retention: { rawDays: options.retentionRawDays } })));
        const live: Live = { queued: 0, importing: null };
        const spoolPending = new Set<string>();
        await mkdir(spoolDir, { recursive: true });
        for (const path of await listSpooled(spoolDir)) spoolPending.add(path);

        const publishStatus = (): void => {
          const c = journal.counters;
          const n = journal.notes;
          ctx.setStatus({
            degraded: n.lastFileFailed,
            message: n.lastFileFailed && c.lastFailure ? `last file failed: ${c.lastFailure.file}: ${c.lastFailure.reason}` : undefined,
            info: {
              format,
              timezone: timeZone,
              dropDir: dropDir ?? null,
              uploadPath: uploadPath ?? null,
              files: c.files,
              rows: c.rows,
              points: c.points,
              gaps: c.gaps,
              failures: c.failures,
              lastImport: c.lastImport ?? null,
              lastFailure: c.lastFailure ?? null,
              queued: spoolPending.size,
              importing: live.importing,
              unmappedPoints: n.unmappedPoints,
              pointErrors: n.pointErrors,
              dstSkippedRows: n.dstSkippedRows,
              dstRepeatedRows: n.dstRepeatedRows,
              ...(format === 'alc-webctrl' ? { catalogue: catalogue.size } : {}),
            },
          });
        };

        const target: ImportTarget = {
          register: async (defs) => {
            await ctx.datapoints.register(defs);
          },
          publishValues: (points) => ctx.bus.publishValues(points),
          now: () => ctx.clock.now(),
        };

        const describe = (point: SourcePoint, mapped: { id: string; unit?: string; description?: string }): DatapointInput => {
          const info = format === 'alc-webctrl' ? catalogue.lookup(point.name) : undefined;
          const meta: Record<string, unknown> = { source: instanceId, format, bmsPoint: point.name, ...point.meta };
          if (info) Object.assign(meta, { location: info.location, controlProgram: info.controlProgram, ioType: info.ioType });
          const fallback = info ? `${info.controlProgram} ${info.name} (${info.location})` : `${format === 'siemens-insight' ? 'Siemens Insight' : 'ALC WebCTRL'} point ${point.name}`;
          // Imported history is kept as long as the source says (default for ever), not storage.retention.rawDays.
          return { id: mapped.id, kind: 'sensor', type: 'number', unit: mapped.unit, description: (mapped.description ?? fallback).slice(0, 1024), meta, retention: { rawDays: options.retentionRawDays } };
        };

        // One import at a time per source: bounded memory and I/O on a small gateway.
        let lock: Promise<void> = Promise.resolve();
        const serial = <T>(fn: () => Promise<T>): Promise<T> => {
          const run = lock.then(fn);
          lock = run.then(
            () => undefined,
            () => undefined,
          );
          return run;
        };

        const dateSource: DateOrderSource = format === 'siemens-insight' ? { format } : { format, alc: options.alc };
        const makeParser = (dateOrder?: SlashDateOrder): ReportParser => (format === 'siemens-insight' ? new InsightParser({ timeZone, states: options.states }) : new AlcParser(options.alc, timeZone, options.states, { dateOrder }));

        /** Refuses a file: failed/ with `.error.txt`, history, counters. */
        const refuse = async (file: StableFile, dirs: { failed: string; spool?: boolean }, shownName: string, startedAt: number, stored: Progress, datapoints: number, e: OutpostError): Promise<void> => {
          const line = (e.details as { line?: number } | undefined)?.line;
          const reason = (e.details as { reason?: string } | undefined)?.reason ?? e.message;
          await journal.flush();
          const moved = await moveToFailed(file.path, dirs.failed, ctx.clock.now(), { line: line || undefined, reason, source: instanceId });
          const failedAt = ctx.clock.now();
          // The same line and reason as the `.error.txt` beside the file.
          await history.add({ status: 'failed', file: shownName, storedAs: basename(moved), size: file.size, at: failedAt, startedAt, ms: failedAt - startedAt, rows: stored.rows, points: stored.points, gaps: stored.gaps, datapoints, ...(line ? { line } : {}), reason });
          if (dirs.spool) await forgetOriginalName(file.path);
          await journal.finish(file.path, { ok: false, failure: { file: shownName, at: ctx.clock.now(), reason: e.message } });
          ctx.log.warn({ file: file.name, code: e.code, reason: e.message, movedTo: moved }, 'BMS file refused');
        };

        const processFile = (file: StableFile, dirs: { archive: string; failed: string; spool?: boolean }): Promise<void> =>
          serial(async () => {
            if (signal.aborted) return;
            // A dropped file that looked cut off and has not changed since: still waiting for its writer.
            const waiting = incomplete.get(file.path);
            if (!dirs.spool && waiting && waiting.size === file.size && waiting.mtimeMs === file.mtimeMs && ctx.clock.now() - file.mtimeMs < options.completeWithinMs) return;
            const key = versionKey(file);
            // Uploads: the name as the client sent it (upload.ts keeps it beside the spooled file).
            const shownName = dirs.spool ? await originalName(file.path) : file.name;
            if (attempts.unfinished(key) >= attempts.max) {
              const e = new OutpostError('BMS_FILE_INVALID', `quarantined: ${attempts.max} imports of this file never finished (the gateway stopped or died during each, e.g. out of memory); it is not tried again`, {
                details: { reason: `quarantined: ${attempts.max} imports of this file never finished (the gateway stopped or died during each, e.g. out of memory); it is not tried again` },
              });
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
            let stored: Progress = resume ? { committedLine: resume.committedLine, rows: resume.rows, points: resume.points, gaps: resume.gaps } : { committedLine: 0, rows: 0, points: 0, gaps: 0 };
            const seen = { datapoints: 0 };
            live.importing = shownName;
            publishStatus();
            try {
              // Pass 1: the whole file, nothing stored (check.ts). A defect refuses it whole;
              // a file that looks cut off is waited for (drop folder) or refused (upload).
              // Readings the next retention pass would delete (storage/retention.ts): said before anything is stored.
              const retentionCheck = ctx.retention && new RetentionCheck(ctx.retention, (id) => ctx.datapoints.get(id) ?? { retention: { rawDays: options.retentionRawDays } }, ctx.clock.now());
              // Day/month order of slash dates, from the whole file (date-order.ts); refuses ambiguous or mixed dates.
              const dateOrder = await decideDateOrder(file.path, dateSource, signal);
              parser = makeParser(dateOrder);
              await checkFile({ path: file.path, parser: makeParser(dateOrder), mapper, describe, batchSize: options.batchSize, signal, seen, now: () => ctx.clock.now(), onPoints: (points) => retentionCheck?.add(points) });
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
              await history.add({ status: 'imported', file: shownName, storedAs: basename(archived), size: file.size, at, startedAt, ms, rows: result.rows, points: result.points, gaps: result.gaps, datapoints: result.datapoints, ...(retentionWarning ? { warning: retentionWarning } : {}) });
              if (dirs.spool) await forgetOriginalName(file.path);
              await journal.finish(file.path, { ok: true, summary: { file: shownName, at, rows: result.rows, points: result.points, gaps: result.gaps, ms } });
              await attempts.end(key);
              ctx.log.info({ file: file.name, rows: result.rows, points: result.points, gaps: result.gaps, ms, resumedAfterLine: resume?.committedLine, unmapped: result.unmapped.length || undefined, pointsList: parser instanceof AlcParser && parser.isPointsList ? parser.catalogue.length : undefined }, 'BMS file imported');
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
                if (!seenBefore) ctx.log.info({ file: file.name, reason: e.message, refusedAfterSeconds: Math.round(options.completeWithinMs / 1000) }, 'BMS file looks cut off or still being written; waiting for the rest');
                await attempts.end(key, true);
                return;
              }
              incomplete.delete(file.path);
              const refused = e.code === 'BMS_FILE_INCOMPLETE' ? new OutpostError('BMS_FILE_INVALID', e.message, { cause: e, details: { ...(e.details as object), reason: `${(e.details as { reason?: string }).reason ?? e.message}${dirs.spool ? '' : ` (unchanged for ${Math.round(options.completeWithinMs / 1000)} s)`}; nothing was stored` } }) : e;
              await refuse(file, dirs, shownName, resume?.startedAt ?? started, stored, seen.datapoints, refused);
              await attempts.end(key);
            } finally {
              live.importing = null;
              spoolPending.delete(file.path);
              publishStatus();
            }
          });

        const onError = (where: string) => (err: unknown) => {
          const e = toOutpostError(err);
          ctx.log.warn({ code: e.code, reason: e.message, where }, 'BMS file source problem; retrying');
        };

        const spoolWatcher = new DropFolderWatcher({
          dir: spoolDir,
          stableMs: 0, // uploads are renamed into the spool only once complete and fsynced
          pollMs: Math.max(options.pollMs, 1000),
          clock: ctx.clock,
          signal,
          onStable: (file) => processFile(file, { archive: join(spoolDir, 'archive'), failed: join(spoolDir, 'failed'), spool: true }),
          onError: onError('spool'),
        });
        tasks.push(spoolWatcher.run());

        if (dropDir && archiveDir && failedDir) {
          await mkdir(dropDir, { recursive: true });
          const dropWatcher = new DropFolderWatcher({
            dir: dropDir,
            stableMs: options.stableMs,
            pollMs: options.pollMs,
            clock: ctx.clock,
            signal,
            onStable: (file) => processFile(file, { archive: archiveDir, failed: failedDir }),
            onError: onError('dropDir'),
          });
          tasks.push(dropWatcher.run());
          // Rows appended to a file after it was archived (its writer paused longer than
          // stableMs at a row boundary, which no check of the content can tell): the file goes
          // back to the drop folder and is imported whole; storage overwrites the same points.
          const checkArchived = async (): Promise<void> => {
            const now = ctx.clock.now();
            for (const w of archivedWatch.splice(0)) {
              if (now > w.until) continue;
              const st = await stat(w.archived).catch((err: NodeJS.ErrnoException) => {
                if (err.code === 'ENOENT') return undefined; // pruned by the operator
                throw err;
              });
              if (!st) continue;
              if (st.size === w.size && st.mtimeMs === w.mtimeMs) {
                archivedWatch.push(w);
                continue;
              }
              const back = await moveInto(w.archived, dropDir, now);
              ctx.log.warn(
                { file: w.name, archived: w.archived, movedTo: back },
                'rows were written to a BMS file after it was imported (its writer paused longer than stableMs): imported again whole; have the BMS write under a temporary name (.tmp/.part) and rename when done',
              );
            }
          };
          tasks.push(
            (async () => {
              while (!signal.aborted) {
                await sleep(Math.max(options.pollMs, 1000), undefined, { signal }).catch(() => undefined);
                if (signal.aborted) return;
                await serial(checkArchived).catch(onError('archive'));
              }
            })(),
          );
          if (options.simulator && format === 'siemens-insight') {
            const sim = options.simulator;
            tasks.push(runInsightSimulator({ dir: dropDir, timeZone, everyMs: sim.everyMs, points: sim.points, intervalMinutes: sim.intervalMinutes, rows: sim.rows, now: () => ctx.clock.now(), signal, onError: onError('simulator') }));
          }
        }

        if (options.upload && uploadPath) {
          const up = options.upload;
          mountUpload(ctx.http.router, {
            path: uploadPath,
            tokenHashes: up.tokenHashes,
            maxBytes: up.maxBytes,
            maxQueued: up.maxQueued,
            spoolDir,
            queued: () => spoolPending.size,
            log: ctx.log,
            onSpooled: (path) => {
              spoolPending.add(path);
              spoolWatcher.kick();
            },
          });
        }
        if (!dropDir && !options.upload) ctx.log.warn('neither dropDir nor upload is configured: this source receives nothing');
        publishStatus();
      },
      async stop() {
        stopController?.abort();
        await Promise.allSettled(tasks.splice(0));
      },
    };
  },
});

async function loadCatalogue(catalogue: AlcCatalogue, path: string, lists: string[], timeZone: string, ctx: AdapterContext): Promise<void> {
  try {
    catalogue.add(JSON.parse(await readFile(path, 'utf8')) as AlcPointInfo[]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') ctx.log.warn({ err: (err as Error).message, path }, 'ALC point catalogue unreadable; rebuilding from points lists');
  }
  for (const list of lists) {
    const parser = new AlcParser(alcOptionsSchema.parse({}), timeZone);
    const mapper = new PointMapper([], 'skip', 'x');
    try {
      await importFile({
        path: list,
        parser,
        mapper,
        target: { register: async () => undefined, publishValues: async () => 0, now: () => ctx.clock.now() },
        describe: () => {
          throw new OutpostError('INTERNAL', 'a points list has no values');
        },
        batchSize: 5000,
        registered: new Set(),
        checkpoint: async () => undefined,
      });
    } catch (err) {
      throw isOutpostError(err) ? new OutpostError('CONFIG_INVALID', `pointsLists: ${list}: ${err.message}`, { cause: err }) : err;
    }
    if (!parser.isPointsList) throw new OutpostError('CONFIG_INVALID', `pointsLists: ${list} is not a WebCTRL points list (expected "Location","Control Program","Name","Type" columns)`);
    catalogue.add(parser.catalogue);
  }
}
