import { z } from 'zod';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { defineAdapter, type AdapterContext } from '../../runtime/adapter.js';
import { OutpostError, isOutpostError, toOutpostError } from '../../runtime/errors.js';
import type { DatapointInput } from '../../runtime/datapoints/model.js';
import { AlcCatalogue, AlcParser, alcOptionsSchema, type AlcPointInfo } from './alc-webctrl.js';
import { ImportHistory, mountHistoryRoute } from './history.js';
import { importFile, type ImportTarget, type Progress } from './importer.js';
import { ImportJournal } from './journal.js';
import { writeFileDurably } from '../../runtime/durable-file.js';
import { PointMapper, pointRuleSchema } from './mapping.js';
import type { ReportParser, SourcePoint } from './report.js';
import { InsightParser } from './siemens-insight.js';
import { runInsightSimulator } from './simulator.js';
import { mountUpload } from './upload.js';
import { timezoneSchema } from '../../runtime/config/timezone.js';
import { DropFolderWatcher, isCandidate, moveInto, moveToFailed, type StableFile } from './watcher.js';

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
  unmappedPoints: string[];
  pointErrors: Array<{ name: string; error: string }>;
  dstSkippedRows: number;
  dstRepeatedRows: number;
  lastFileFailed: boolean;
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
        const history = new ImportHistory(ctx.dataDir);
        const dropped = await history.load();
        if (dropped > 0) ctx.log.warn({ dropped, path: history.path }, 'import history had unreadable lines (torn by a crash?); they were dropped');
        mountHistoryRoute(ctx.http.router, instanceId, history);
        const catalogue = new AlcCatalogue();
        const cataloguePath = join(ctx.dataDir, 'alc-points.json');
        if (format === 'alc-webctrl') await loadCatalogue(catalogue, cataloguePath, options.pointsLists.map(abs), timeZone, ctx);
        const registered = new Set<string>();
        const live: Live = { queued: 0, importing: null, unmappedPoints: [], pointErrors: [], dstSkippedRows: 0, dstRepeatedRows: 0, lastFileFailed: false };
        const spoolPending = new Set<string>();
        await mkdir(spoolDir, { recursive: true });
        for (const name of await readdir(spoolDir)) if (isCandidate(name) && !name.endsWith('.part')) spoolPending.add(join(spoolDir, name));

        const publishStatus = (): void => {
          const c = journal.counters;
          ctx.setStatus({
            degraded: live.lastFileFailed,
            message: live.lastFileFailed && c.lastFailure ? `last file failed: ${c.lastFailure.file}: ${c.lastFailure.reason}` : undefined,
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
              unmappedPoints: live.unmappedPoints,
              pointErrors: live.pointErrors,
              dstSkippedRows: live.dstSkippedRows,
              dstRepeatedRows: live.dstRepeatedRows,
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
          return { id: mapped.id, kind: 'sensor', type: 'number', unit: mapped.unit, description: (mapped.description ?? fallback).slice(0, 1024), meta };
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

        const processFile = (file: StableFile, dirs: { archive: string; failed: string; spool?: boolean }): Promise<void> =>
          serial(async () => {
            if (signal.aborted) return;
            let resume = journal.progress(file.path);
            if (resume && (resume.size !== file.size || resume.mtimeMs !== file.mtimeMs)) {
              await journal.forget(file.path);
              resume = undefined;
            }
            const parser: ReportParser = format === 'siemens-insight' ? new InsightParser({ timeZone, states: options.states }) : new AlcParser(options.alc, timeZone, options.states);
            const started = ctx.clock.now();
            // Uploads are spooled as `<ms>-<hex8>-<name>`: the history shows the name as sent.
            const shownName = dirs.spool ? file.name.replace(/^\d{10,}-[0-9a-f]{8}-/, '') : file.name;
            let stored: Progress = resume ? { committedLine: resume.committedLine, rows: resume.rows, points: resume.points, gaps: resume.gaps } : { committedLine: 0, rows: 0, points: 0, gaps: 0 };
            const seen = { datapoints: 0 };
            live.importing = file.name;
            publishStatus();
            try {
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
              noteUnmapped(live, result.unmapped, result.pointErrors);
              live.dstSkippedRows += result.dstSkippedRows;
              live.dstRepeatedRows += result.dstRepeatedRows;
              // Counters of the last batches before the file leaves the drop folder: once archived it is never counted again.
              await journal.flush();
              const archived = await moveInto(file.path, dirs.archive, ctx.clock.now());
              // One clock reading for the end, so `at - ms === startedAt` holds in the history.
              const startedAt = resume?.startedAt ?? started;
              const at = ctx.clock.now();
              const ms = at - startedAt;
              // History before the journal: a crash in between re-imports nothing (the file is
              // archived) and at worst leaves the counters one file short, never the history.
              await history.add({ status: 'imported', file: shownName, storedAs: basename(archived), size: file.size, at, startedAt, ms, rows: result.rows, points: result.points, gaps: result.gaps, datapoints: result.datapoints });
              await journal.finish(file.path, { ok: true, summary: { file: file.name, at, rows: result.rows, points: result.points, gaps: result.gaps, ms } });
              live.lastFileFailed = false;
              ctx.log.info({ file: file.name, rows: result.rows, points: result.points, gaps: result.gaps, ms, resumedAfterLine: resume?.committedLine, unmapped: result.unmapped.length || undefined, pointsList: parser instanceof AlcParser && parser.isPointsList ? parser.catalogue.length : undefined }, 'BMS file imported');
            } catch (err) {
              if (signal.aborted) {
                // Stopped mid-import: the journal resumes it on the next start.
                await journal.flush();
                return;
              }
              const e = toOutpostError(err);
              const transient = !(err instanceof OutpostError) ? Boolean((err as NodeJS.ErrnoException)?.code) : e.retryable;
              if (transient) {
                await journal.flush();
                ctx.log.warn({ file: file.name, code: e.code, reason: e.message }, 'BMS file import interrupted; retrying on the next poll');
                throw err;
              }
              const line = (e.details as { line?: number } | undefined)?.line;
              const reason = (e.details as { reason?: string } | undefined)?.reason ?? e.message;
              await journal.flush();
              const moved = await moveToFailed(file.path, dirs.failed, ctx.clock.now(), { line: line || undefined, reason, source: instanceId });
              const failedAt = ctx.clock.now();
              // The same line and reason as the `.error.txt` beside the file.
              await history.add({ status: 'failed', file: shownName, storedAs: basename(moved), size: file.size, at: failedAt, startedAt: resume?.startedAt ?? started, ms: failedAt - (resume?.startedAt ?? started), rows: stored.rows, points: stored.points, gaps: stored.gaps, datapoints: seen.datapoints, ...(line ? { line } : {}), reason });
              await journal.finish(file.path, { ok: false, failure: { file: file.name, at: ctx.clock.now(), reason: e.message } });
              live.lastFileFailed = true;
              ctx.log.warn({ file: file.name, code: e.code, reason: e.message, movedTo: moved }, 'BMS file refused');
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

function noteUnmapped(live: Live, unmapped: string[], errors: Array<{ name: string; error: string }>): void {
  // Bounded: the status topic shows the first few, the log has the rest.
  for (const name of unmapped) if (!live.unmappedPoints.includes(name) && live.unmappedPoints.length < 50) live.unmappedPoints.push(name);
  for (const e of errors) if (!live.pointErrors.some((p) => p.name === e.name) && live.pointErrors.length < 50) live.pointErrors.push(e);
}

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
