import { mkdir, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { defineAdapter, type AdapterContext } from '../../runtime/adapter.js';
import { toOutpostError } from '../../core/errors.js';
import './errors.js';
import type { DatapointInput } from '../../core/datapoint.js';
import { AlcCatalogue, AlcParser } from './alc-webctrl.js';
import { ImportHistory, mountHistoryRoute } from './history.js';
import type { ImportTarget } from './importer.js';
import { ImportAttempts } from './attempts.js';
import { ImportJournal } from './journal.js';
import { PointMapper } from './mapping.js';
import type { ReportParser, SourcePoint } from './report.js';
import { InsightParser } from './siemens-insight.js';
import { runInsightSimulator } from './simulator.js';
import { listSpooled, mountUpload } from './upload.js';
import type { DateOrderSource } from './date-order.js';
import type { SlashDateOrder } from './timestamps.js';
import { DropFolderWatcher, moveInto } from './watcher.js';
import { FORMATS, bmsFilesSchema, type Format } from './config.js';
import { loadCatalogue, readPointsList } from './points-lists.js';
import { makeFileProcessor, type ArchivedFile, type IncompleteFile, type Live } from './process-file.js';
import { bmsFilesStatusSchema, type BmsFilesStatusInfo } from './status-schema.js';

export { DEFAULT_BATCH_SIZE, type BmsFilesOptions } from './config.js';

/**
 * Building-automation trend exports (Siemens Insight, ALC WebCTRL) from a drop folder and
 * by HTTP upload: streamed, mapped to datapoints, stored idempotently, then archived.
 */
export default defineAdapter({
  type: 'bms-files',
  description: 'Siemens Insight and ALC WebCTRL trend exports from a drop folder or HTTP upload',
  statusSchema: bmsFilesStatusSchema,
  schema: bmsFilesSchema,
  async check(options, env) {
    const problems: Array<{ path: string; message: string }> = [];
    for (const [i, list] of options.pointsLists.entries()) {
      try {
        await readPointsList(resolve(env.cwd, list), options.timezone ?? env.gateway.timezone, () => Date.now());
      } catch (err) {
        problems.push({ path: `pointsLists.${i}`, message: (err as Error).message });
      }
    }
    return problems;
  },
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
        const incomplete = new Map<string, IncompleteFile>();
        /** Recently archived drop-folder files, watched for rows appended after the import (bounded). */
        const archivedWatch: ArchivedFile[] = [];
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
        if (stale.length > 0)
          await ctx.datapoints.register(stale.map(({ adapter: _adapter, ...d }) => ({ ...d, retention: { rawDays: options.retentionRawDays } })));
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
            } satisfies BmsFilesStatusInfo,
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
          const fallback = info
            ? `${info.controlProgram} ${info.name} (${info.location})`
            : `${format === 'siemens-insight' ? 'Siemens Insight' : 'ALC WebCTRL'} point ${point.name}`;
          // Imported history is kept as long as the source says (default for ever), not storage.retention.rawDays.
          return {
            id: mapped.id,
            kind: 'sensor',
            type: 'number',
            unit: mapped.unit,
            description: (mapped.description ?? fallback).slice(0, 1024),
            meta,
            retention: { rawDays: options.retentionRawDays },
          };
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
        const makeParser = (dateOrder?: SlashDateOrder): ReportParser =>
          format === 'siemens-insight'
            ? new InsightParser({ timeZone, states: options.states })
            : new AlcParser(options.alc, timeZone, options.states, { dateOrder });

        const processFile = makeFileProcessor({
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
            tasks.push(
              runInsightSimulator({
                dir: dropDir,
                timeZone,
                everyMs: sim.everyMs,
                points: sim.points,
                intervalMinutes: sim.intervalMinutes,
                rows: sim.rows,
                now: () => ctx.clock.now(),
                signal,
                onError: onError('simulator'),
              }),
            );
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
