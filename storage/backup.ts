// Writing a backup: reading the store page by page (or through one read view) into NDJSON lines,
// plain, gzip or to a file. Also the entry point of backup and restore: the reading side lives in
// backup-restore.ts and is re-exported here, so importers keep one module to import from.
import { createHash, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { OutpostError } from '../core/errors.js';
import './errors.js';
import { DATAPOINT_ID } from '../core/datapoint.js';
import { supports, type Store } from './store.js';
import { BACKUP_FORMAT, BACKUP_VERSION, type BackupHeader, type BackupOptions, type BackupSummary } from './backup-format.js';

export {
  MAX_LINE_BYTES,
  type BackupHeader,
  type BackupOptions,
  type BackupSource,
  type BackupSummary,
  type RestoreOptions,
  type RestoreReport,
} from './backup-format.js';
export { restore, restoreFile, verifyBackup } from './backup-restore.js';

/** Points read per range query while writing a backup (bounded memory: one page at a time). */
const PAGE_POINTS = 5000;
/** Bytes collected before handing a chunk to the output stream. */
const CHUNK_BYTES = 64 * 1024;

/**
 * The lines of a backup, ready for the output, in chunks of about 64 KiB.
 *
 * Consistency: a store that offers a read view (LevelStore: one LevelDB snapshot taken when
 * the backup starts) is read entirely through it, so the backup is one point-in-time image
 * even while the gateway keeps writing: every point durable when it started is in it exactly
 * once, nothing written later is. A store without one (MemoryStore) is read page by page.
 * Restore needs no more than that: every line is an idempotent (id, t) overwrite.
 * Public Store methods only, so the on-disk key encoding can change underneath.
 */
async function* backupChunks(store: Store, options: BackupOptions, summary: BackupSummary, hash: Hash): AsyncGenerator<Buffer> {
  const wanted = options.ids ? new Set(options.ids) : undefined;
  let pending: string[] = [];
  let pendingBytes = 0;
  const take = (line: string): Buffer | undefined => {
    pending.push(line, '\n');
    pendingBytes += line.length + 1;
    summary.lines++;
    if (pendingBytes < CHUNK_BYTES) return undefined;
    return flush();
  };
  const flush = (): Buffer => {
    const chunk = Buffer.from(pending.join(''), 'utf8');
    hash.update(chunk);
    pending = [];
    pendingBytes = 0;
    return chunk;
  };

  const header: BackupHeader = {
    format: BACKUP_FORMAT,
    version: BACKUP_VERSION,
    gateway: summary.gateway,
    createdAt: summary.createdAt,
    from: summary.from,
    to: summary.to,
  };
  const out = take(JSON.stringify(header));
  if (out) yield out;

  const view = store.readView ? await store.readView() : undefined;
  try {
    yield* backupBody(view ?? store, view ? () => view.ids() : () => seriesWithoutDefinition(store), wanted, summary, take);
  } finally {
    await view?.close();
  }
  const last = flush();
  summary.sha256 = hash.digest('hex');
  const trailer = { end: BACKUP_FORMAT, datapoints: summary.datapoints, points: summary.points, lines: summary.lines, sha256: summary.sha256 };
  yield Buffer.concat([last, Buffer.from(JSON.stringify(trailer) + '\n', 'utf8')]);
}

/** Definitions, then every series' points in time order, as lines handed to `take` (which returns a chunk when one is full). */
async function* backupBody(
  source: Pick<Store, 'query' | 'listDatapoints'>,
  seriesIds: () => Promise<string[]>,
  wanted: Set<string> | undefined,
  summary: BackupSummary,
  take: (line: string) => Buffer | undefined,
): AsyncGenerator<Buffer> {
  let out: Buffer | undefined;
  const definitions = (await source.listDatapoints()).filter((dp) => !wanted || wanted.has(dp.id));
  definitions.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const dp of definitions) {
    summary.datapoints++;
    if ((out = take(JSON.stringify({ datapoint: dp })))) yield out;
  }

  const ids = new Set(definitions.map((dp) => dp.id));
  for (const id of await seriesIds()) if (!wanted || wanted.has(id)) ids.add(id);
  for (const id of [...ids].sort()) {
    let from = summary.from ?? 0;
    const to = summary.to ?? undefined;
    for (;;) {
      const page = await source.query(id, { from, ...(to === undefined ? {} : { to }), limit: PAGE_POINTS, order: 'asc' });
      for (const p of page) {
        summary.points++;
        const line = JSON.stringify(p.q ? { id, t: p.t, v: p.v, q: p.q } : { id, t: p.t, v: p.v });
        if ((out = take(line))) yield out;
      }
      if (page.length < PAGE_POINTS) break;
      from = page[page.length - 1]!.t + 1;
    }
  }
}

/**
 * Ids that have points but no definition (a series written straight to the store). Only a
 * store declaring `seriesIds` can list them (LevelStore, by seeking over its point keys);
 * every other store's series are its definitions.
 */
async function seriesWithoutDefinition(store: Store): Promise<string[]> {
  if (!supports(store, 'seriesIds')) return [];
  return store.seriesIds();
}

/** Checks a backup's range and ids before anything is written (BAD_REQUEST naming the problem). */
export function checkBackupOptions(options: BackupOptions): void {
  for (const [name, v] of [
    ['from', options.from],
    ['to', options.to],
  ] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0))
      throw new OutpostError('BAD_REQUEST', `backup range: "${name}" must be epoch milliseconds ≥ 0, got ${v}`);
  }
  if (options.from !== undefined && options.to !== undefined && options.from > options.to) {
    throw new OutpostError('BAD_REQUEST', `backup range: "from" (${options.from}) is after "to" (${options.to})`);
  }
  for (const id of options.ids ?? []) {
    if (!DATAPOINT_ID.test(id)) throw new OutpostError('BAD_REQUEST', `backup ids: ${JSON.stringify(id)} is not a datapoint id ([a-z0-9_.-])`);
  }
}

function newSummary(options: BackupOptions): BackupSummary {
  checkBackupOptions(options);
  return {
    gateway: options.gateway ?? 'unknown',
    createdAt: (options.now ?? Date.now)(),
    from: options.from ?? null,
    to: options.to ?? null,
    datapoints: 0,
    points: 0,
    lines: 0,
    sha256: '',
  };
}

/**
 * Writes a backup as NDJSON into `out` (which is ended). Streams with backpressure:
 * one page of points in memory at a time. Wrap `out` in gzip yourself, or use `backupToFile`.
 */
export async function backup(store: Store, out: Writable, options: BackupOptions = {}): Promise<BackupSummary> {
  const summary = newSummary(options);
  await pipeline(Readable.from(backupChunks(store, options, summary, createHash('sha256'))), out);
  return summary;
}

/** Same as `backup`, gzip-compressed (the HTTP route with `Accept-Encoding: gzip`, `.gz` files). */
export async function backupGzip(store: Store, out: Writable, options: BackupOptions = {}): Promise<BackupSummary> {
  const summary = newSummary(options);
  await pipeline(Readable.from(backupChunks(store, options, summary, createHash('sha256'))), createGzip(), out);
  return summary;
}

/**
 * Writes a backup file (gzip when the name ends in `.gz`). The data goes to `<file>.partial`
 * first and is renamed when complete, so a failed backup never leaves a file under the name.
 */
export async function backupToFile(store: Store, file: string, options: BackupOptions = {}): Promise<BackupSummary> {
  const partial = `${file}.partial`;
  const out = createWriteStream(partial);
  try {
    const summary = file.endsWith('.gz') ? await backupGzip(store, out, options) : await backup(store, out, options);
    // The file's data reaches the disk before it takes the final name, and the rename
    // reaches the disk before we report success (a power cut leaves old or new, whole).
    await fsyncPath(partial);
    await rename(partial, file);
    await fsyncPath(dirname(resolve(file)));
    return summary;
  } catch (err) {
    // The stream opens its file asynchronously: a backup refused at once (bad range) must
    // not let that open create the file after the removal below.
    if (!out.closed) await new Promise<void>((resolve) => out.destroy().once('close', () => resolve()));
    await rm(partial, { force: true });
    throw err;
  }
}

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
