import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { OutpostError, isOutpostError } from '../core/errors.js';
import { DATAPOINT_ID, DatapointSchema, coerceValue, type Datapoint, type Value } from '../core/datapoint.js';
import { LevelStore } from './level-store.js';
import { PREFIX } from './keys.js';
import type { PointRecord, Store } from './store.js';

/**
 * Backup and restore of the time series (datapoint definitions and raw points) as NDJSON:
 *
 *   {"format":"outpost-backup","version":1,"gateway":"site-1","createdAt":…,"from":null,"to":null}
 *   {"datapoint":{"id":"plant.meter1.power","adapter":"modbus",…}}        one per definition
 *   {"id":"plant.meter1.power","t":1763800000000,"v":230.1}                 one per point,
 *   {"id":"plant.meter1.power","t":1763800001000,"v":null,"q":"stale"}      per datapoint, by time
 *   {"end":"outpost-backup","datapoints":1,"points":2,"lines":4,"sha256":"…"}
 *
 * The trailer's `sha256` is the hash of every byte before it (each line with its `\n`),
 * so a truncated or edited file is refused. Rollups are not in the file: restore writes
 * through `Store.write`, which rebuilds them in the same batch as the points. The outbox,
 * broker state and users are not part of a backup, and restored points are not queued for
 * sync (`{ outbox: false }`): the original gateway synced them already.
 */
export const BACKUP_FORMAT = 'outpost-backup';
export const BACKUP_VERSION = 1;

/** Points read per range query while writing a backup (bounded memory: one page at a time). */
const PAGE_POINTS = 5000;
/** Bytes collected before handing a chunk to the output stream. */
const CHUNK_BYTES = 64 * 1024;
/** Points per `Store.write` on restore (one group commit each, bounded memory). */
export const RESTORE_BATCH = 5000;
/** A line longer than this is refused before it is parsed (a point's JSON value is at most 64 KiB). */
export const MAX_LINE_BYTES = 1024 * 1024;
/** Datapoint definitions one backup may hold (their types are kept in memory to check points). */
const MAX_DATAPOINTS = 200_000;

export interface BackupOptions {
  /** Inclusive, epoch ms: points before are left out. */
  from?: number;
  /** Inclusive, epoch ms: points after are left out. */
  to?: number;
  /** Only these datapoints (definitions and points); default all. */
  ids?: readonly string[];
  /** Gateway id written into the header. */
  gateway?: string;
  /** Clock for `createdAt` (tests). */
  now?: () => number;
}

export interface BackupHeader {
  format: typeof BACKUP_FORMAT;
  version: typeof BACKUP_VERSION;
  gateway: string;
  createdAt: number;
  from: number | null;
  to: number | null;
}

export interface BackupSummary {
  gateway: string;
  createdAt: number;
  from: number | null;
  to: number | null;
  datapoints: number;
  points: number;
  /** Lines before the trailer (header, definitions, points). */
  lines: number;
  sha256: string;
}

export interface RestoreOptions {
  /**
   * Registers a datapoint definition. Default `store.putDatapoint`; a running gateway
   * passes its registry so the definition is known (and published) at once.
   */
  register?: (dp: Datapoint) => Promise<unknown>;
  /** Points per `store.write` (default 5000). */
  batch?: number;
}

export interface RestoreReport extends BackupSummary {
  /** True when the whole file was checked before anything was written (reopenable source). */
  verifiedFirst: boolean;
}

/** Where a backup comes from: a stream (one pass) or a function that opens it anew (verify, then write). */
export type BackupSource = Readable | (() => Readable);

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

  const header: BackupHeader = { format: BACKUP_FORMAT, version: BACKUP_VERSION, gateway: summary.gateway, createdAt: summary.createdAt, from: summary.from, to: summary.to };
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
 * Ids that have points but no definition (a series written straight to the store). Only
 * the LevelStore can list them, by seeking over its point keys; every other store's
 * series are its definitions.
 */
async function seriesWithoutDefinition(store: Store): Promise<string[]> {
  if (!(store instanceof LevelStore) || typeof store.idsUnder !== 'function') return [];
  return store.idsUnder(PREFIX.point);
}

/** Checks a backup's range and ids before anything is written (BAD_REQUEST naming the problem). */
export function checkBackupOptions(options: BackupOptions): void {
  for (const [name, v] of [['from', options.from], ['to', options.to]] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw new OutpostError('BAD_REQUEST', `backup range: "${name}" must be epoch milliseconds ≥ 0, got ${v}`);
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

// ---------------------------------------------------------------------------------------
// Reading

function asBuffer(chunk: Buffer | string): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
}

/** True for errors zlib raises on bad input (Z_DATA_ERROR, Z_BUF_ERROR on a cut-off stream, …). */
function isZlibError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('Z_');
}

/**
 * Chunks of the source, gunzipped when it starts with the gzip magic bytes 1f 8b
 * (RFC 1952 §2.3.1). Damaged or cut-off gzip data is BACKUP_INVALID; an error of the
 * source itself (a read error, an aborted upload) is passed on as it is.
 */
async function* decoded(input: AsyncIterable<Buffer | string>): AsyncGenerator<Buffer> {
  const it = input[Symbol.asyncIterator]();
  // A stream may hand out a first chunk of one byte (an upload): collect two to decide.
  let head: Buffer = Buffer.alloc(0);
  while (head.length < 2) {
    const n = await it.next();
    if (n.done) break;
    head = head.length === 0 ? asBuffer(n.value) : Buffer.concat([head, asBuffer(n.value)]);
  }
  if (head.length === 0) return;
  async function* all(): AsyncGenerator<Buffer> {
    yield head;
    for (let n = await it.next(); !n.done; n = await it.next()) yield asBuffer(n.value);
  }
  if (!(head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b)) {
    yield* all();
    return;
  }
  const gunzip = createGunzip();
  const compressed = Readable.from(all());
  compressed.on('error', (err) => gunzip.destroy(err));
  compressed.pipe(gunzip);
  try {
    for await (const chunk of gunzip) yield chunk as Buffer;
  } catch (err) {
    if (!isZlibError(err)) throw err;
    throw new OutpostError('BACKUP_INVALID', `the gzip data is damaged or truncated (${(err as Error).message})`, { cause: err });
  } finally {
    compressed.destroy();
    gunzip.destroy();
  }
}

interface Line {
  /** 1-based line number. */
  n: number;
  /** The line's bytes including its `\n` (absent on a last line without one). */
  raw: Buffer;
  text: string;
}

/** Splits chunks into lines; a line longer than `MAX_LINE_BYTES` is refused before it is buffered further. */
async function* splitLines(chunks: AsyncIterable<Buffer>): AsyncGenerator<Line> {
  let n = 0;
  let rest: Buffer = Buffer.alloc(0);
  for await (const chunk of chunks) {
    let buf = rest.length > 0 ? Buffer.concat([rest, chunk]) : chunk;
    let start = 0;
    for (let nl = buf.indexOf(0x0a, start); nl !== -1; nl = buf.indexOf(0x0a, start)) {
      n++;
      if (nl - start > MAX_LINE_BYTES) throw invalid(n, `line is longer than ${MAX_LINE_BYTES} bytes`);
      const raw = buf.subarray(start, nl + 1);
      yield { n, raw, text: raw.toString('utf8', 0, raw.length - 1) };
      start = nl + 1;
    }
    buf = buf.subarray(start);
    if (buf.length > MAX_LINE_BYTES) throw invalid(n + 1, `line is longer than ${MAX_LINE_BYTES} bytes`);
    // Copy so the source's (possibly pooled) chunk is not kept alive by a small remainder.
    rest = Buffer.from(buf);
  }
  if (rest.length > 0) yield { n: n + 1, raw: rest, text: rest.toString('utf8') };
}

class LineError extends Error {
  constructor(
    readonly line: number,
    readonly reason: string,
  ) {
    super(`line ${line}: ${reason}`);
  }
}

function invalid(line: number, reason: string): LineError {
  return new LineError(line, reason);
}

type Parsed = { kind: 'datapoint'; dp: Datapoint } | { kind: 'point'; point: PointRecord } | { kind: 'end' };

function isObject(x: unknown): x is Record<string, unknown> {
  return x !== null && typeof x === 'object' && !Array.isArray(x);
}

/**
 * Checks a backup line by line: header first, definitions, points, the trailer last with
 * counts and the sha256 of everything before it. Errors name the line.
 */
class BackupReader {
  header: BackupHeader | undefined;
  private readonly hash = createHash('sha256');
  private readonly types = new Map<string, Datapoint['type']>();
  private datapoints = 0;
  private points = 0;
  private lines = 0;
  private seenPoints = false;
  private ended = false;
  sha256 = '';

  accept(line: Line): Parsed | undefined {
    if (this.ended) throw invalid(line.n, 'data after the trailer line');
    if (!line.raw.length || line.raw[line.raw.length - 1] !== 0x0a) {
      // The trailer is the only line that may miss its newline; anything else is a cut-off file.
      if (!/^\{"end":/.test(line.text)) throw invalid(line.n, 'the file ends in the middle of a line (truncated)');
    }
    let obj: unknown;
    try {
      obj = JSON.parse(line.text);
    } catch {
      if (line.n === 1) throw invalid(1, `not an Outpost backup (the first line must be the header {"format":"${BACKUP_FORMAT}",…})`);
      throw invalid(line.n, line.text.trim() === '' ? 'empty line' : 'not valid JSON');
    }
    if (!isObject(obj)) throw invalid(line.n, 'expected a JSON object');
    if (line.n === 1) {
      this.header = parseHeader(obj, line.n);
      this.count(line);
      return undefined;
    }
    if ('end' in obj) {
      this.checkTrailer(obj, line.n);
      this.ended = true;
      return { kind: 'end' };
    }
    if ('datapoint' in obj) {
      if (this.seenPoints) throw invalid(line.n, 'datapoint definitions must come before the points');
      if (Object.keys(obj).length !== 1) throw invalid(line.n, 'a definition line has only the "datapoint" field');
      const parsed = DatapointSchema.safeParse(obj.datapoint);
      if (!parsed.success) throw invalid(line.n, `datapoint definition is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'datapoint'}: ${i.message}`).join('; ')}`);
      if (this.types.has(parsed.data.id)) throw invalid(line.n, `datapoint ${parsed.data.id} is defined twice`);
      if (this.types.size >= MAX_DATAPOINTS) throw invalid(line.n, `more than ${MAX_DATAPOINTS} datapoint definitions`);
      this.types.set(parsed.data.id, parsed.data.type);
      this.datapoints++;
      this.count(line);
      return { kind: 'datapoint', dp: parsed.data };
    }
    const point = parsePoint(obj, line.n, this.types);
    this.seenPoints = true;
    this.points++;
    this.count(line);
    return { kind: 'point', point };
  }

  /** Called at the end of the input. */
  finish(lastLine: number): void {
    if (!this.header) throw invalid(1, 'the file is empty');
    if (!this.ended) throw invalid(lastLine + 1, `the file ends after line ${lastLine} without the trailer line: it is truncated`);
  }

  summary(): BackupSummary {
    const h = this.header!;
    return { gateway: h.gateway, createdAt: h.createdAt, from: h.from, to: h.to, datapoints: this.datapoints, points: this.points, lines: this.lines, sha256: this.sha256 };
  }

  private count(line: Line): void {
    this.lines++;
    this.hash.update(line.raw);
  }

  private checkTrailer(obj: Record<string, unknown>, n: number): void {
    if (obj.end !== BACKUP_FORMAT) throw invalid(n, `trailer must have "end": "${BACKUP_FORMAT}"`);
    this.sha256 = this.hash.digest('hex');
    for (const [name, have] of [['datapoints', this.datapoints], ['points', this.points], ['lines', this.lines]] as const) {
      if (obj[name] !== have) throw invalid(n, `trailer says ${String(obj[name])} ${name}, the file has ${have}: lines are missing or added`);
    }
    if (obj.sha256 !== this.sha256) throw invalid(n, `checksum mismatch: the trailer says sha256 ${String(obj.sha256)}, the lines before it hash to ${this.sha256} (the file was changed or damaged)`);
  }
}

function parseHeader(obj: Record<string, unknown>, n: number): BackupHeader {
  if (obj.format !== BACKUP_FORMAT) throw invalid(n, `not an Outpost backup (the first line must be the header {"format":"${BACKUP_FORMAT}",…})`);
  if (obj.version !== BACKUP_VERSION) throw invalid(n, `backup format version ${JSON.stringify(obj.version)} is not supported (this Outpost reads version ${BACKUP_VERSION})`);
  if (typeof obj.gateway !== 'string') throw invalid(n, 'header: "gateway" must be a string');
  if (typeof obj.createdAt !== 'number' || !Number.isSafeInteger(obj.createdAt)) throw invalid(n, 'header: "createdAt" must be epoch milliseconds');
  const bound = (v: unknown, name: string): number | null => {
    if (v === null || v === undefined) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw invalid(n, `header: "${name}" must be epoch milliseconds or null`);
    return v;
  };
  return { format: BACKUP_FORMAT, version: BACKUP_VERSION, gateway: obj.gateway, createdAt: obj.createdAt, from: bound(obj.from, 'from'), to: bound(obj.to, 'to') };
}

function parsePoint(obj: Record<string, unknown>, n: number, types: ReadonlyMap<string, Datapoint['type']>): PointRecord {
  const extra = Object.keys(obj).filter((k) => k !== 'id' && k !== 't' && k !== 'v' && k !== 'q');
  if (extra.length > 0) throw invalid(n, `unknown field(s) ${extra.join(', ')} (a point line is {"id","t","v","q"?})`);
  const { id, t, q } = obj;
  if (typeof id !== 'string' || !DATAPOINT_ID.test(id)) throw invalid(n, 'point: "id" must be a datapoint id ([a-z0-9_.-]{1,128})');
  if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0) throw invalid(n, `point ${id}: "t" must be epoch milliseconds ≥ 0`);
  if (!('v' in obj)) throw invalid(n, `point ${id}: "v" is missing`);
  if (q !== undefined && q !== 'stale' && q !== 'bad') throw invalid(n, `point ${id}: "q" must be "stale" or "bad" when present`);
  let v = obj.v as Value;
  const type = types.get(id);
  if (v !== null && type) {
    try {
      v = coerceValue({ id, type }, v);
    } catch (err) {
      if (!isOutpostError(err)) throw err;
      throw invalid(n, err.message);
    }
  }
  return q ? { id, t, v, q } : { id, t, v };
}

/**
 * Reads a whole backup without writing anything: header, every line, counts and checksum.
 * Resolves with the summary or rejects with BACKUP_INVALID naming the line.
 */
export async function verifyBackup(input: Readable): Promise<BackupSummary> {
  const reader = new BackupReader();
  let last = 0;
  try {
    for await (const line of splitLines(decoded(input))) {
      last = line.n;
      reader.accept(line);
    }
    reader.finish(last);
  } catch (err) {
    throw asBackupError(err, last, 0, 0);
  } finally {
    input.destroy();
  }
  return reader.summary();
}

/**
 * Restores a backup into `store`: definitions through `register` (default `putDatapoint`),
 * points through `store.write` in batches of `RESTORE_BATCH` (same (id, t) overwrites, so
 * restoring twice gives the same data).
 *
 * Given a function that opens the source anew (a file, a spooled upload), the whole file
 * is verified first and nothing is written unless it is intact. Given a one-shot stream,
 * lines are checked as they arrive and written batch by batch: on a bad line the error
 * says how many definitions and points before it were already written (the unwritten
 * batch is dropped), and a truncation is only found at the end. Either way, restoring a
 * good backup afterwards converges to the same data.
 */
export async function restore(store: Store, source: BackupSource, options: RestoreOptions = {}): Promise<RestoreReport> {
  let verifiedFirst = false;
  if (typeof source === 'function') {
    await verifyBackup(source());
    verifiedFirst = true;
  }
  const input = typeof source === 'function' ? source() : source;
  const register = options.register ?? ((dp: Datapoint) => store.putDatapoint(dp));
  const batchSize = Math.max(1, Math.min(options.batch ?? RESTORE_BATCH, 100_000));
  const reader = new BackupReader();
  let written = 0;
  let registered = 0;
  let batch: PointRecord[] = [];
  let last = 0;
  try {
    for await (const line of splitLines(decoded(input))) {
      last = line.n;
      const item = reader.accept(line);
      if (!item) continue;
      if (item.kind === 'datapoint') {
        await register(item.dp);
        registered++;
      } else if (item.kind === 'point') {
        batch.push(item.point);
        if (batch.length >= batchSize) {
          await store.write(batch, { outbox: false });
          written += batch.length;
          batch = [];
        }
      }
    }
    reader.finish(last);
    if (batch.length > 0) {
      await store.write(batch, { outbox: false });
      written += batch.length;
    }
  } catch (err) {
    throw asBackupError(err, last, registered, written);
  } finally {
    input.destroy();
  }
  return { ...reader.summary(), verifiedFirst };
}

/** Restores a backup file (gzip or plain, detected from its first bytes), verifying it completely first. */
export function restoreFile(store: Store, file: string, options: RestoreOptions = {}): Promise<RestoreReport> {
  return restore(store, () => createReadStream(file), options);
}

function asBackupError(err: unknown, lastLine: number, datapoints: number, points: number): unknown {
  const already =
    datapoints + points === 0
      ? 'nothing was restored'
      : `${datapoints} datapoint definition(s) and ${points} point(s) from the lines before were already restored (restoring a good backup overwrites them: restore is idempotent)`;
  if (err instanceof LineError) {
    return new OutpostError('BACKUP_INVALID', `backup refused at line ${err.line}: ${err.reason}; ${already}`, {
      details: { line: err.line, reason: err.reason, datapointsRestored: datapoints, pointsRestored: points },
    });
  }
  if (isOutpostError(err, 'BACKUP_INVALID')) {
    return new OutpostError('BACKUP_INVALID', `backup refused after line ${lastLine}: ${err.message}; ${already}`, {
      cause: err,
      details: { line: lastLine + 1, datapointsRestored: datapoints, pointsRestored: points },
    });
  }
  if (datapoints + points > 0 && isOutpostError(err)) {
    return new OutpostError(err.code, `${err.message} (${already})`, { cause: err, details: { datapointsRestored: datapoints, pointsRestored: points } });
  }
  return err;
}
