import { Level } from 'level';
import { mkdir } from 'node:fs/promises';
import { OutpostError } from '../core/errors.js';
import { DatapointSchema, type Datapoint } from '../core/datapoint.js';
import { GroupCommit } from './group-commit.js';
import { StorageAlarm, type StorageRoom } from './storage-alarm.js';
import { isNoRoom, type SpaceReserve } from './space-reserve.js';
import { CurrentBuckets, recomputeCurrent, type CurrentUpdate } from './current-buckets.js';
import { OutboxEncoder, decodeOutbox, type OutboxRow } from './outbox-codec.js';
import { LIVE_MAX, RAW_BLOCK_MS, ROLLUP_LIVE_MAX, blockStart, cut, extendInPlace, mergeEntries, rawCodec, rollupBlockMs, rollupCodec, type Chunk, type ChunkCodec, type CutMode } from './chunks.js';
import {
  ACKED_KEY,
  HIGH,
  SEQ_KEY,
  metaKey,
  outboxKey,
  outboxSeq,
  pointKey,
  pointPrefix,
  pointTime,
  rollupKey,
  rollupPrefix,
} from './keys.js';
import {
  MAX_AGGREGATE_INTERVALS,
  RESOLUTIONS,
  appendReading,
  counterStep,
  isAgg,
  toAgg,
  bestResolution,
  bucketStart,
  decodeAgg,
  finalize,
  mergeOrdered,
  numericValue,
  singleAgg,
  validateAggregateQuery,
  type Agg,
  type AggregatePoint,
  type AggregateQuery,
  type ResolutionName,
  type Reading,
  type RollupEntry,
} from './rollups.js';
import {
  DEFAULT_QUERY_LIMIT,
  MAX_QUERY_LIMIT,
  isNewer,
  type OutboxRecord,
  type PointRecord,
  type RangeQuery,
  type WriteOptions,
  type Store,
  type StoreReadView,
  type StoreStats,
  type StoredValue,
} from './store.js';
import type { DatapointDeletion, StoredPoints } from './store.js';
import { eraseDatapoint, storedPointsIn, type EraseDb } from './datapoint-erase.js';

/**
 * A stored value: bytes (chunks: their layouts are binary) or text (everything else: the
 * outbox, marks, definitions, broker state), which LevelDB holds as its UTF-8. The database
 * reads bytes by default; reads of text say so (TEXT).
 */
type DbValue = Buffer | string;

/** The database of a LevelStore: keys are text, values bytes or text (see DbValue). */
export type StoreDb = Level<string, DbValue>;

/** Read options of values stored as text. */
const TEXT = { valueEncoding: 'utf8' } as const;

/** A value read with TEXT (typed as either). */
function text(value: DbValue): string {
  return typeof value === 'string' ? value : value.toString('utf8');
}

/** The LevelDB snapshot handle (abstract-level 3). */
type Snapshot = ReturnType<StoreDb['snapshot']>;

/**
 * Points per group commit at most (config `storage.maxBatch`). Under load a commit takes
 * everything waiting up to this; each commit costs per datapoint (its newest chunks and four
 * current buckets rewritten) as well as per point, so larger commits ingest faster:
 * 1,000 datapoints at 8 readings per commit ingest ~1.6× faster than at 5 (bench/README.md).
 * At 10,000 a commit is ~50 ms of CPU on the 2-core reference machine.
 */
export const DEFAULT_MAX_BATCH = 10_000;

/**
 * Points that must wait before a commit is prepared behind one being written (GroupCommit
 * minPipelined); with fewer, it waits for that write. Live MQTT QoS 1 traffic, four publishers
 * with 64 in flight over 100 datapoints, made commits of ~95 readings, about one per datapoint.
 */
const PIPELINED_MIN = 256;

export interface LevelStoreOptions {
  path: string;
  /** fsync every group commit (default true): acknowledged means durable. */
  sync?: boolean;
  /** Points per group commit at most. */
  maxBatch?: number;
  /** Points waiting for a commit at most; writers beyond wait (bounded memory). */
  maxPending?: number;
  /** While in the read-only alarm state, recovery (a reopen once there is room: storage/storage-alarm.ts) is tried this often (default 5000 ms). */
  probeIntervalMs?: number;
  /** Called when storage enters (error set) or leaves (error undefined) the read-only alarm state. */
  onAlarm?: (error: string | undefined) => void;
  /**
   * Room kept next to the database for opening it on a full disk (storage/space-reserve.ts):
   * given up to open, then read-only until there is room for it again. Absent: no reserve.
   */
  reserve?: SpaceReserve;
}

/** Points written with `{ outbox: false }` (restore): stored and rolled up, not queued for sync. */
const NO_OUTBOX = new WeakSet<PointRecord>();

/** A copy with a literal's fixed shape (object spread of these was a slow path in V8). */
function copyAgg(a: Agg): Agg {
  return { count: a.count, sum: a.sum, min: a.min, max: a.max, ft: a.ft, fv: a.fv, lt: a.lt, lv: a.lv, inc: a.inc };
}

/*
 * The general write path (late values, overwrites) works on rollup entries (RollupEntry): a
 * bucket of one reading is that reading, as read (rollupCodec `readings`) or as the stored
 * point itself, and entries are shared between a batch's changes wherever nothing changes
 * them; an aggregate is made only where one is updated (ownAgg), and the chunks it leaves in
 * the cache are copies (ownRollupTail). A re-imported report of trend data overwrites every
 * 1 min and 15 min bucket it covers, each one reading: nine-field aggregates for them, read,
 * recomputed and copied, were most of its allocations and of its time.
 */

function firstTime(e: RollupEntry): number {
  return isAgg(e) ? e.ft : e.t;
}

function lastTime(e: RollupEntry): number {
  return isAgg(e) ? e.lt : e.t;
}

function countOf(e: RollupEntry): number {
  return isAgg(e) ? e.count : 1;
}

/** An aggregate of this batch's own, to update in place. */
function ownAgg(e: RollupEntry): Agg {
  return isAgg(e) ? copyAgg(e) : singleAgg(e.t, e.v);
}

/** Adds `b` (entirely after `a`) to `a` in place: mergeOrdered(a, b) without allocating. */
function mergeInto(a: Agg, b: RollupEntry): void {
  if (!isAgg(b)) {
    appendReading(a, b.t, b.v);
    return;
  }
  a.inc = a.inc + b.inc + counterStep(a.lv, b.fv);
  a.count += b.count;
  a.sum += b.sum;
  if (b.min < a.min) a.min = b.min;
  if (b.max > a.max) a.max = b.max;
  a.lt = b.lt;
  a.lv = b.lv;
}

/** Merges entries in time order into one: the entry itself when it is alone, else an aggregate of its own. */
class EntryMerge {
  entry: RollupEntry | undefined;
  private own = false;
  add(e: RollupEntry): void {
    if (!this.entry) this.entry = e;
    else {
      if (!this.own) {
        this.entry = ownAgg(this.entry);
        this.own = true;
      }
      mergeInto(this.entry as Agg, e);
    }
  }
}

/**
 * Newest rollup chunks of the general path, to cache: aggregates of the cache's own, since
 * appendRollups updates cached buckets in place (the batch's entries may be readings, the
 * stored points themselves, or shared between resolutions).
 */
function ownRollupTail(chunks: ReadonlyArray<Chunk<RollupEntry>> | undefined): ReadonlyArray<Chunk<Agg>> | undefined {
  return chunks?.map((c) => ({ key: c.key, ts: c.ts, es: c.es.map(ownAgg) }));
}

/**
 * Runs to recompute, grouped into clusters of one series whose buckets lie close together
 * (gaps of at most 64 buckets: 15 min trend data re-imported leaves 15 one-minute buckets
 * between runs), so each cluster is one range read; a gap costs at most 64 buckets' worth of
 * extra reads. Runs of a resolution come series by series with ascending buckets.
 */
function clusters(runs: Run[], ms: number): Run[][] {
  const out: Run[][] = [];
  let current: Run[] | undefined;
  for (const run of runs) {
    const last = current?.[current.length - 1];
    if (last && last.series === run.series && run.bucket > last.bucket && run.bucket - last.bucket <= 64 * ms) current!.push(run);
    else out.push((current = [run]));
  }
  return out;
}

/**
 * A run's readings applied to its bucket where that needs no recompute (rollupUpdates): each
 * one before the bucket's first reading or after its last (appends, prepends), or a reading
 * that is not a number (counts for nothing). Returns false when one lands inside the bucket's
 * span (late value, overwrite): the bucket is recomputed then (marked changed, `agg` as before).
 */
function applyRun(run: Run): boolean {
  const { ts, vals } = run.series;
  let cur = run.agg;
  // `cur` is an aggregate of this batch's own (updated in place); else it is shared (the
  // bucket before the batch, or the batch's one reading in it) and copied before it changes.
  let own = false;
  let touched = false;
  for (let i = run.from; i < run.to; i++) {
    const t = ts[i]!;
    const p = vals[i]!;
    const v = numericValue(p);
    if (v === undefined) {
      // Not a number: counts for nothing, unless it overwrites a reading inside the bucket.
      if (cur && t >= firstTime(cur) && t <= lastTime(cur)) {
        run.changed = true;
        return false;
      }
      continue;
    }
    if (!cur) {
      cur = typeof p.v === 'number' ? (p as Reading) : singleAgg(t, v);
      touched = true;
    } else if (t > lastTime(cur)) {
      if (!own) {
        cur = ownAgg(cur);
        own = true;
      }
      appendReading(cur as Agg, t, v);
      touched = true;
    } else if (t < firstTime(cur)) {
      cur = mergeOrdered(singleAgg(t, v), toAgg(cur));
      own = true;
      touched = true;
    } else {
      // Inside the bucket's span (late value or overwrite): recompute the bucket.
      run.changed = true;
      return false;
    }
  }
  if (touched) {
    run.agg = cur;
    run.changed = true;
  }
  return true;
}

/** A batch's points of one datapoint, sorted by time, and their runs per resolution. */
interface Series {
  id: string;
  ts: number[];
  vals: StoredValue[];
  /** Points stored as they are already (1 at their index), found when the raw chunks were read. */
  unchanged?: Uint8Array;
  runs: Run[][];
  /** Rollup buckets this batch changes, per resolution (null entry: delete the bucket). */
  changes: Array<Changes | undefined>;
}

interface Changes {
  ts: number[];
  es: Array<RollupEntry | null>;
  /** False once a recomputed bucket was added out of order. */
  sorted: boolean;
}

function addChange(series: Series, r: number, bucket: number, agg: RollupEntry | null): void {
  let c = series.changes[r];
  if (!c) series.changes[r] = c = { ts: [], es: [], sorted: true };
  else if (bucket <= c.ts[c.ts.length - 1]!) c.sorted = false;
  c.ts.push(bucket);
  c.es.push(agg);
}

function sortChanges(c: Changes): void {
  const order = c.ts.map((_, i) => i).sort((x, y) => c.ts[x]! - c.ts[y]!);
  c.ts = order.map((i) => c.ts[i]!);
  c.es = order.map((i) => c.es[i]!);
  c.sorted = true;
}

/** Entries without deletions (appends have nothing to delete). */
function withoutDeletes<E>(ts: number[], es: Array<E | null>): { ts: number[]; es: E[] } {
  if (!es.includes(null)) return { ts, es: es as E[] };
  const keep = es.map((e) => e !== null);
  return { ts: ts.filter((_, i) => keep[i]), es: es.filter((e): e is E => e !== null) };
}

/** The bucket entry of a bucket holding only the reading `vals[i]`: the stored point itself when its value is a number. */
function singleEntry(ts: readonly number[], vals: readonly StoredValue[], i: number): RollupEntry {
  const p = vals[i]!;
  return typeof p.v === 'number' ? (p as Reading) : singleAgg(ts[i]!, numericValue(p)!);
}

/**
 * The newest rollup chunks of an append, as cached: aggregates only (the next commit updates
 * the newest bucket in place), and the chunk before the newest bucket only while appends
 * may still join it (fewer than ROLLUP_LIVE_MAX buckets): a bulk import's long chunks
 * would be converted for nothing. Without it a late bucket before the newest one is read.
 */
function cachedRollupTail(chunks: ReadonlyArray<Chunk<RollupEntry>> | undefined): ReadonlyArray<Chunk<Agg>> | undefined {
  if (!chunks) return undefined;
  const keep = chunks.length > 1 && chunks[0]!.ts.length >= ROLLUP_LIVE_MAX ? chunks.slice(1) : chunks;
  return keep.map((c) => (c.es.every(isAgg) ? (c as Chunk<Agg>) : { key: c.key, ts: c.ts, es: c.es.map(toAgg) }));
}

/** A reading as the store keeps it: the caller's point may carry more and may be reused. */
function storedCopy(p: StoredValue): StoredValue {
  return p.q ? { t: p.t, v: p.v, q: p.q } : { t: p.t, v: p.v };
}

/** Raw chunks to cache, holding copies of the readings (a raw tail holds at most LIVE_MAX). */
function ownChunks(chunks: ReadonlyArray<Chunk<StoredValue>>): ReadonlyArray<Chunk<StoredValue>> {
  return chunks.map((c) => ({ key: c.key, ts: c.ts, es: c.es.map(storedCopy) }));
}

/** The error of a commit prepared from one that failed: dropped, never written (its writers write again). */
function notWritten(): OutpostError {
  return new OutpostError('STORAGE_WRITE_FAILED', 'not written: the commit before it failed (storage is read-only until it recovers)');
}

/** Returned by the in-memory write path when it would need to read chunks from disk. */
const NEEDS_READ = Symbol('needs read');
const NONE: readonly never[] = [];

/** The points of a series inside one bucket of resolution `r`: entries [from, to). */
interface Run {
  series: Series;
  r: number;
  from: number;
  to: number;
  bucket: number;
  /** The bucket's entry: before the batch (the same object as `before`), then after it. */
  agg: RollupEntry | null;
  /** The bucket's aggregate before the batch (never mutated). */
  before: RollupEntry | null;
  /** No reading of the batch: the current bucket closed by it, written as it is (rollupUpdates). */
  carry: boolean;
  /** The batch changes the bucket (its new entry is `agg`, null: now empty). */
  changed: boolean;
}

/**
 * One chunked series on disk: how its keys are made, its block length, its value codec and
 * how its newest chunks are cut: raw points extend a small newest chunk (`tail`); rollups
 * keep the newest bucket, which every commit of live data updates, alone (`head`).
 */
interface Space<E, W = E> {
  /** The series' key prefix, naming it. */
  name: string;
  keyOf(t: number): string;
  blockMs: number;
  codec: ChunkCodec<E, W>;
  mode: CutMode;
  /** The newest chunk takes appended entries while it holds fewer than this. */
  liveMax: number;
  /** Lays the exact current bucket over a rollup chunk read from disk (storage/current-buckets.ts). */
  overlay?(ts: readonly number[], es: E[]): void;
}

/** A series' newest chunks after a commit (raw when `r` is undefined); undefined: not known. */
interface TailUpdate {
  id: string;
  r?: number;
  chunks: ReadonlyArray<Chunk<StoredValue>> | ReadonlyArray<Chunk<Agg>> | undefined;
}

/** Largest time a key can hold (15 digits). */
const MAX_TIME = 999_999_999_999_999;

/** A batch's points of one datapoint as they arrive. */
interface Building {
  /** The datapoint's index in the commit's outbox value (-1: none yet). */
  outboxId: number;
  ts: number[];
  vals: StoredValue[];
  /** Strictly ascending so far (the usual case: nothing to sort or deduplicate). */
  ascending: boolean;
}

/** The batch's points per datapoint, sorted by time; of two points with the same time the later one wins. */
function seriesOf(byId: Map<string, Building>): Series[] {
  const out: Series[] = [];
  for (const [id, b] of byId) {
    let { ts, vals } = b;
    if (!b.ascending) {
      const last = new Map<number, StoredValue>();
      for (let i = 0; i < ts.length; i++) last.set(ts[i]!, vals[i]!);
      const entries = [...last].sort((x, y) => x[0] - y[0]);
      ts = entries.map((e) => e[0]);
      vals = entries.map((e) => e[1]);
    }
    out.push({ id, ts, vals, runs: [], changes: [] });
  }
  return out;
}

/** [from, to) index ranges of ts[0..end) (ascending) split where two times lie more than `gap` apart. */
function clusterRanges(ts: readonly number[], end: number, gap: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let start = 0;
  for (let i = 1; i < end; i++) {
    if (ts[i]! - ts[i - 1]! > gap) {
      out.push([start, i]);
      start = i;
    }
  }
  if (end > 0) out.push([start, end]);
  return out;
}

/**
 * Batch entries equal to what is stored (a file imported again): `flags[i]` set for each,
 * `count` of them. They change neither their chunk nor any rollup bucket.
 */
interface Unchanged<E> {
  flags: Uint8Array;
  count: number;
  equal(a: E, b: E): boolean;
}

/** Marks entries [from, to) of the batch (ts/es ascending) equal to the entry at the same time in `chunks` (ascending); returns how many. */
function markUnchanged<E>(chunks: ReadonlyArray<Chunk<E>>, ts: readonly number[], es: ReadonlyArray<E | null>, from: number, to: number, same: Unchanged<E>): number {
  let n = 0;
  let j = from;
  for (const c of chunks) {
    for (let i = 0; i < c.ts.length && j < to; i++) {
      const t = c.ts[i]!;
      while (j < to && ts[j]! < t) j++;
      if (j < to && ts[j] === t) {
        const e = es[j];
        if (e !== null && e !== undefined && same.equal(e, c.es[i]!)) {
          if (!same.flags[j]) same.count++;
          same.flags[j] = 1;
          n++;
        }
        j++;
      }
    }
  }
  return n;
}

/**
 * Which raw chunks a read keeps (readChunks): a chunk whose span up to the next chunk on disk,
 * [start, end), meets no minute holding a reading of the batch is left out. A batch of sparse
 * readings (one an hour, say) over densely stored ones (1 s) then holds and rewrites the
 * chunks its readings land in, not every chunk of the range it spans.
 */
type Keep = (start: number, end: number) => boolean;

/** Keep for the raw chunks of a series whose batch readings are at `ts` (ascending): those meeting a minute that holds one (what recomputing the 1 min buckets reads). */
function keepMinutesOf(ts: readonly number[]): Keep {
  const ms = RESOLUTIONS[0].ms;
  return (start, end) => {
    // The first reading at or after the minute holding `start`: is it in a minute that begins before `end`?
    const lo = bucketStart(start, ms);
    let a = 0;
    let b = ts.length;
    while (a < b) {
      const mid = (a + b) >> 1;
      if (ts[mid]! < lo) a = mid + 1;
      else b = mid;
    }
    return a < ts.length && bucketStart(ts[a]!, ms) < end;
  };
}

/** A reading equal to a stored one: the same value (numbers bit for bit but NaN, which is stored as null) and quality; JSON values are taken as changed. */
function sameReading(a: StoredValue, b: StoredValue): boolean {
  if ((a.q ?? undefined) !== (b.q ?? undefined)) return false;
  const v = a.v;
  if (typeof v === 'number') return typeof b.v === 'number' && Object.is(v, b.v) && !Number.isNaN(v);
  return (v === null || typeof v !== 'object') && v === b.v;
}

/** The series without its unchanged points (undefined: none is left), for the rollups. */
function changedOnly(s: Series): Series | undefined {
  const flags = s.unchanged;
  if (!flags) return s;
  const ts: number[] = [];
  const vals: StoredValue[] = [];
  for (let i = 0; i < s.ts.length; i++) {
    if (flags[i]) continue;
    ts.push(s.ts[i]!);
    vals.push(s.vals[i]!);
  }
  return ts.length === 0 ? undefined : { id: s.id, ts, vals, runs: [], changes: [] };
}

/** Index of `t` in ascending `ts`, or -1. */
function indexOfTime(ts: readonly number[], t: number): number {
  let lo = 0;
  let hi = ts.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const x = ts[mid]!;
    if (x === t) return mid;
    if (x < t) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Maps items through `fn` with at most `limit` in flight; results in input order. */
async function inParallel<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

type BatchOp = { type: 'put'; key: string; value: DbValue } | { type: 'del'; key: string };

/** Where a commit's chunk writes go: the LevelDB chained batch, or an OpList for work done concurrently. */
interface Sink {
  put(key: string, value: DbValue): unknown;
  del(key: string): unknown;
}

/** Operations recorded while several series are written concurrently, replayed into the batch in order. */
class OpList implements Sink {
  private readonly ops: BatchOp[] = [];
  put(key: string, value: DbValue): void {
    this.ops.push({ type: 'put', key, value });
  }
  del(key: string): void {
    this.ops.push({ type: 'del', key });
  }
  replay(sink: Sink): void {
    for (const op of this.ops) {
      if (op.type === 'put') sink.put(op.key, op.value);
      else sink.del(op.key);
    }
  }
}

/** The command an operator runs when LevelDB reports corruption on open. */
export function repairCommand(path: string): string {
  return `outpost repair --db ${path}`;
}

/** Runs LevelDB's repair (rebuilds the manifest from the table and log files it can read). */
export async function repairLevelDb(path: string): Promise<void> {
  // `level` re-exports classic-level's ClassicLevel on Node, which has the static repair
  // (LevelDB RepairDB); its browser-compatible typings leave it out.
  await (Level as unknown as { repair(location: string): Promise<void> }).repair(path);
}

/**
 * Range reads in flight at once when a batch reads chunks (late values, re-imports, recomputed
 * rollups). More than libuv's four threads only queue, and contend: with 32 in flight, closing
 * an iterator took the main thread ~30 µs instead of ~4 µs, advancing it ~2× as long, and a
 * re-import ran slower than with 4-8 (storage/README.md "Overwrites").
 */
const READ_PARALLEL = 8;

/**
 * Readings of the series that read from disk handled together within a commit (whole series:
 * one longer than this is a slice alone). What a slice reads and computes (chunks decoded,
 * buckets before and after: a few KB a reading) is dropped before the next slice. Smaller
 * slices also cost V8 less garbage collection under the Pi heap flags (1 MB semi-spaces):
 * a re-import with every value changed took ~25 % less main-thread CPU at 2,048 than at 8,192.
 */
const READ_SLICE_POINTS = 2_048;

/** Consecutive groups of whole series, each of at most `max` readings (a longer series alone). */
function* slices(series: readonly Series[], max: number): Generator<Series[]> {
  let group: Series[] = [];
  let n = 0;
  for (const s of series) {
    if (group.length > 0 && n + s.ts.length > max) {
      yield group;
      group = [];
      n = 0;
    }
    group.push(s);
    n += s.ts.length;
  }
  if (group.length > 0) yield group;
}

/**
 * Bounds the newest-chunk caches (datapoints; each holds at most LIVE_MAX readings and
 * 4 × (ROLLUP_LIVE_MAX + 1) buckets) on a 1 GB device. Beyond it the caches start over: appends then
 * start new chunks without reading, and the current buckets are read once again.
 */
const TAIL_CACHE_MAX = 20_000;

export class LevelStore implements Store {
  private readonly level: StoreDb;
  private readonly latestById = new Map<string, StoredValue>();
  /** Newest reading per datapoint of commits prepared but not yet on disk (latestById: on disk). */
  private readonly pendingLatest = new Map<string, StoredValue>();
  /** The last outbox sequence number taken by a prepared commit (seq: the last one on disk). */
  private preparedSeq = 0;
  /** The write of the newest prepared commit while in flight: the next commit's write waits for it. */
  private writing: Promise<void> | undefined;
  /** While a commit is prepared: the write before it, still in flight (its reads from disk wait for it). */
  private diskBehind: Promise<void> | undefined;
  /** Failed commits so far: a commit prepared while one failed is void. */
  private failures = 0;
  /** Newest raw chunk per datapoint, so appending never reads. */
  private readonly rawTail = new Map<string, ReadonlyArray<Chunk<StoredValue>>>();
  /** Newest rollup chunk per datapoint and resolution (index into RESOLUTIONS), so updating the current buckets never reads. */
  private readonly rollupTail = new Map<string, Array<ReadonlyArray<Chunk<Agg>> | undefined>>();
  private readonly aggCodec = rollupCodec(decodeAgg);
  /** The rollup codec of the general write path: one-reading buckets decode to readings. */
  private readonly entryCodec = rollupCodec(decodeAgg, true);
  /**
   * Per datapoint without raw points (all expired) but with rollups, at open: the newest
   * bucket start on disk. Raw points' newest time (latestById) bounds the rollups otherwise.
   */
  private readonly rollupFloor = new Map<string, number>();
  /** Current rollup buckets whose disk state may be older than the durable one (storage/current-buckets.ts). */
  private readonly current = new CurrentBuckets();
  /** The running commit's effects on `current`, applied once it is durable; undefined between commits. */
  private commitCurrent: CurrentUpdate[] | undefined;
  /** Chunk ranges read from disk during the running commit (see chunksBeforeBatch); undefined between commits. */
  private commitReads: Map<string, Array<{ from: number; to: number; chunks: Array<Chunk<unknown>> }>> | undefined;
  private readonly writer: GroupCommit<PointRecord>;
  /** Builds each commit's outbox value (one commit at a time). */
  private readonly outbox = new OutboxEncoder();
  private seq = 0;
  private acked = 0;
  /** The read-only alarm state after a failed write, and its recovery. */
  private readonly alarm: StorageAlarm;
  /**
   * A write to the database failed since it was opened: LevelDB's log may end in a torn record,
   * and whatever is written behind it is lost at the next open (storage/storage-alarm.ts).
   * Nothing is written, not even commits queued before the failure, until it is reopened.
   */
  private torn = false;
  private closed = true;

  constructor(private readonly options: LevelStoreOptions) {
    // Chunk values go to LevelDB as bytes: handed over as text they were converted to UTF-8,
    // where every byte from 0x80 (half of a double's) takes two, at ~1/3 of a bulk commit's CPU.
    this.level = new Level<string, DbValue>(options.path, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    this.writer = new GroupCommit<PointRecord>({
      commit: (items) => this.serially(() => this.commit(items)),
      maxBatch: options.maxBatch ?? DEFAULT_MAX_BATCH,
      maxPending: options.maxPending ?? 100_000,
      minPipelined: PIPELINED_MIN,
    });
    this.alarm = new StorageAlarm({
      path: options.path,
      intervalMs: options.probeIntervalMs ?? 5000,
      reopen: () => this.reopen(),
      onAlarm: options.onAlarm,
      reserve: options.reserve,
    });
  }

  /** The underlying LevelDB, for retention, backup and broker persistence in this folder. */
  get db(): StoreDb {
    return this.level;
  }

  get path(): string {
    return this.options.path;
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  async open(): Promise<void> {
    await mkdir(this.options.path, { recursive: true });
    let fullAtStart: string | undefined;
    try {
      await this.level.open();
    } catch (err) {
      if (!isNoRoom(err) || !(await this.options.reserve?.release())) throw openError(this.options.path, err);
      // The disk is full: the reserve gives LevelDB the room opening takes, and the store
      // serves what it holds, read-only until there is room for the reserve again.
      fullAtStart = `the disk was full at start (${(err as Error).message}); opened with the space reserve`;
      try {
        await this.level.open();
      } catch (again) {
        throw openError(this.options.path, again);
      }
    }
    this.closed = false;
    await this.loadState();
    if (fullAtStart !== undefined) this.alarm.raise(fullAtStart);
    else await this.options.reserve?.ensure();
  }

  /**
   * Closes and opens LevelDB again (the way out of the read-only alarm state, see
   * storage/storage-alarm.ts), with nothing being written meanwhile, and reloads what is kept
   * in memory from the disk.
   */
  private async reopen(): Promise<void> {
    await this.exclusive(async () => {
      if (this.closed) return;
      await this.level.close();
      try {
        await this.level.open();
      } catch (err) {
        throw openError(this.options.path, err);
      }
      this.torn = false;
      this.dropRollupCache();
      await this.reloadState();
      // The recovery waited for room for it (storage/storage-alarm.ts): ready for the next full start.
      await this.options.reserve?.ensure();
    });
  }

  private async loadState(): Promise<void> {
    const seq = await this.level.get(SEQ_KEY, TEXT);
    this.seq = seq === undefined ? 0 : Number(text(seq));
    this.preparedSeq = this.seq;
    const acked = await this.level.get(ACKED_KEY, TEXT);
    this.acked = acked === undefined ? 0 : Number(text(acked));
    await this.loadLatest();
    await this.recomputeCurrentBuckets();
  }

  /**
   * The exact current bucket of every resolution of every datapoint, from its raw points and
   * finer buckets on disk: live commits left their disk state older, and a crash (or power
   * loss) leaves no record of which (storage/current-buckets.ts). Four small reads a datapoint.
   */
  private async recomputeCurrentBuckets(): Promise<void> {
    this.current.clear();
    this.unwritten.clear();
    const reads = {
      numericReadings: async (id: string, from: number, to: number) => {
        const out: Array<{ t: number; v: number }> = [];
        for (const p of await this.query(id, { from, to, limit: MAX_QUERY_LIMIT })) {
          const v = numericValue(p);
          if (v !== undefined) out.push({ t: p.t, v });
        }
        return out;
      },
      buckets: async (id: string, r: number, from: number, to: number) => {
        const out = new Map<number, Agg>();
        for await (const c of this.chunks(this.rollupSpace(r, id), from, to, undefined, false, 256, true)) {
          for (let i = 0; i < c.ts.length; i++) if (c.ts[i]! >= from && c.ts[i]! <= to) out.set(c.ts[i]!, c.es[i]!);
        }
        return out;
      },
    };
    await inParallel([...this.latestById], READ_PARALLEL, async ([id, latest]) => {
      const exact = await recomputeCurrent(id, latest.t, reads);
      for (let r = 0; r < exact.length; r++) if (exact[r]) this.current.set(id, r, exact[r]!);
    });
  }

  /**
   * Writes the exact current buckets of `id` to disk (before retention deletes the raw points
   * they are recomputed from). Runs alone (exclusive): nothing prepared is ahead of the disk.
   */
  private async writeCurrentBuckets(id: string): Promise<void> {
    const ops: BatchOp[] = [];
    for (let r = 0; r < RESOLUTIONS.length; r++) {
      const exact = this.current.get(id, r);
      if (!exact) continue;
      const space = this.rollupSpace(r, id);
      // Read with the overlay: the chunk holding the bucket, as it should be.
      for await (const c of this.chunks(space, exact.bucket, exact.bucket)) {
        if (indexOfTime(c.ts, exact.bucket) >= 0) ops.push({ type: 'put', key: c.key, value: space.codec.encode(c.ts, c.es) });
      }
    }
    if (ops.length > 0) await this.batchWrite(ops, this.options.sync ?? true);
    this.current.forget(id);
    this.unwritten.delete(id);
    this.forgetTails(id);
  }

  /** Newest point of every datapoint that has points (by seeking from one id's range to the next). */
  private async loadLatest(): Promise<void> {
    for (const id of await this.idsUnder('p!')) {
      const [last] = await this.query(id, { order: 'desc', limit: 1 });
      if (last) this.latestById.set(id, last);
    }
    // Rollups outlive raw points (retention): a datapoint whose raw points are all gone
    // still has buckets, and writes into their time span must merge with them.
    for (const res of RESOLUTIONS) {
      for (const id of await this.idsUnder(`r!${res.name}!`)) {
        if (this.latestById.has(id)) continue;
        const [newest] = await this.level.iterator({ gte: rollupPrefix(res.name, id), lt: rollupPrefix(res.name, id) + HIGH, reverse: true, limit: 1 }).all();
        if (!newest) continue;
        const { ts } = this.aggCodec.decode(pointTime(newest[0]), newest[1]);
        this.rollupFloor.set(id, Math.max(this.rollupFloor.get(id) ?? -Infinity, ts[ts.length - 1]!));
      }
    }
  }

  /**
   * The newest bucket of resolution `ms` that can be on disk for `id`: every stored bucket
   * is at or before it, so a later one is an append that needs no read.
   */
  private newestBucket(id: string, ms: number): number {
    const t = this.newestTime(id);
    return t === -Infinity ? -Infinity : bucketStart(t, ms);
  }

  /** The newest raw point's time of `id` as commits are prepared: on disk, or in a commit being written (-Infinity: none). */
  private newestRawTime(id: string): number {
    return Math.max(this.latestById.get(id)?.t ?? -Infinity, this.pendingLatest.get(id)?.t ?? -Infinity);
  }

  /** The newest time stored for `id`: its newest raw point, or, with none, its newest rollup bucket (-Infinity: nothing). */
  private newestTime(id: string, newestRaw = this.newestRawTime(id)): number {
    return Math.max(newestRaw, this.rollupFloor.get(id) ?? -Infinity);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.alarm.stop();
    await this.writer.flush();
    this.closed = true;
    await this.level.close();
  }

  /**
   * A write to this database outside the store failed (broker state shares it): storage goes
   * read-only as for a failed commit, because the next write would land behind a torn log record.
   */
  writeFailed(error: string): void {
    this.torn = true;
    this.alarm.raise(error);
  }

  /** Free and needed bytes measured by the last recovery that waited for space (undefined: none waits). */
  get room(): StorageRoom | undefined {
    return this.alarm.readOnly ? this.alarm.room : undefined;
  }

  /** A write of the store's own outside a commit: refused while read-only, and a failure raises the alarm. */
  private async batchWrite(ops: BatchOp[], sync: boolean): Promise<void> {
    this.alarm.check();
    try {
      await this.level.batch(ops, { sync });
    } catch (err) {
      this.writeFailed((err as Error).message);
      throw new OutpostError('STORAGE_WRITE_FAILED', `LevelDB batch failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async write(points: readonly PointRecord[], options: WriteOptions = {}): Promise<void> {
    if (this.closed) throw new OutpostError('STORAGE_CLOSED');
    if (points.length === 0) return;
    // Same code as a failed write: the broker must not PUBACK, the client resends later.
    this.alarm.check();
    if (options.outbox === false) for (const p of points) NO_OUTBOX.add(p);
    await this.writer.add(points);
  }

  /**
   * Prepares one commit (everything but the disk write) and starts its write; resolves with
   * `durable`, which settles once the commit is on disk. Commits are pipelined (GroupCommit):
   * the next one is prepared while this one is written, from the state this one leaves —
   * the cached newest chunks and buckets, the newest readings (pendingLatest) and outbox
   * sequence numbers (preparedSeq) — so it must never reach the disk if this one does not:
   * writes are chained, and a failure fails every commit prepared after it (their writers
   * are refused, as with any failed write, and write again) and drops all that state.
   * Readings become visible to readers (latest, queries) once durable.
   */
  private async commit(points: PointRecord[]): Promise<{ durable: Promise<void> }> {
    // Queued before a write failed: behind a torn log record it would be lost at the next open.
    if (this.torn) this.alarm.check();
    const failures = this.failures;
    // The write before this one, if still in flight: reads from disk wait for it (prepared
    // state is ahead of the disk until then), and so does this write.
    const before = this.writing;
    this.diskBehind = before;
    // Operations go straight into LevelDB's chained batch (no intermediate op objects for the outbox).
    const batch = this.level.batch();
    const firstSeq = this.preparedSeq + 1;
    // The whole commit is one outbox record `o!<first seq>` holding its points in order
    // (seq = first + index): one put per commit instead of one per point (storage/outbox-codec.ts).
    const outbox = this.outbox;
    outbox.reset();
    // The batch's points per datapoint in arrival order; seriesOf sorts (last one wins).
    const byId = new Map<string, Building>();
    for (let i = 0; i < points.length; i++) {
      const p = points[i]!;
      let b = byId.get(p.id);
      if (!b) byId.set(p.id, (b = { outboxId: -1, ts: [], vals: [], ascending: true }));
      else if (p.t <= b.ts[b.ts.length - 1]!) b.ascending = false;
      b.ts.push(p.t);
      // The caller's point itself, read during this commit only; what outlives it (the newest
      // chunks and readings cached) is copied (ownChunks, storedCopy).
      b.vals.push(p);
      if (!NO_OUTBOX.has(p)) {
        if (b.outboxId < 0) b.outboxId = outbox.addId(p.id);
        outbox.add(b.outboxId, p.t, p.v, p.q);
      }
    }
    const seq = this.preparedSeq + outbox.count;
    const series = seriesOf(byId);
    const tails: TailUpdate[] = [];
    this.commitReads = new Map();
    const currentUpdates: CurrentUpdate[] = (this.commitCurrent = []);
    this.commitMarks = [];
    try {
      if (outbox.count > 0) {
        batch.put(outboxKey(firstSeq), outbox.encode());
        batch.put(SEQ_KEY, String(seq));
      }
      const rawReads = new Set(this.writeRaw(series, batch, tails));
      const general = series.filter((s) => !this.appendRollups(s, batch, tails));
      // Series that read chunks from disk (late values, overwrites), a slice of at most
      // READ_SLICE_POINTS readings at a time: what a slice reads and computes (chunks, runs,
      // changes) is dropped before the next one, so a re-imported file costs memory by the
      // slice, not by everything the commit overwrites. Series are independent (their keys
      // differ), and every operation still goes into this commit's one atomic batch.
      // (A raw read means a late reading, so such a series is a general one too; both kept for safety.)
      const generalSet = new Set(general);
      const reading = series.filter((s) => generalSet.has(s) || rawReads.has(s));
      for (const slice of slices(reading, READ_SLICE_POINTS)) {
        await this.writeRawRead(
          slice.filter((s) => rawReads.has(s)),
          batch,
          tails,
        );
        // Points stored as they already are (the same file imported again) change no bucket.
        const rollups: Series[] = [];
        for (const s of slice) {
          if (!generalSet.has(s)) continue;
          const changed = changedOnly(s);
          if (changed) rollups.push(changed);
        }
        await this.rollupUpdates(rollups);
        await this.writeRollups(rollups, batch, tails);
        this.commitReads!.clear();
        for (const s of slice) {
          s.runs = [];
          s.changes = [];
        }
      }
      // A write before this one failed meanwhile: this one was prepared from its state.
      if (this.failures !== failures) throw notWritten();
    } catch (err) {
      // A batch that never reached write() holds native memory until closed.
      await batch.close();
      throw this.failures !== failures ? notWritten() : this.failedPreparation(err);
    } finally {
      this.commitReads = undefined;
      this.commitCurrent = undefined;
      this.diskBehind = undefined;
    }
    // The state the next commit is prepared from.
    this.preparedSeq = seq;
    this.applyMarks();
    const newest: StoredValue[] = new Array(series.length);
    for (let i = 0; i < series.length; i++) {
      const s = series[i]!;
      const value = s.vals[s.vals.length - 1]!;
      newest[i] = storedCopy(value);
      if (value.t >= this.newestRawTime(s.id)) this.pendingLatest.set(s.id, newest[i]!);
    }
    if (this.rawTail.size > TAIL_CACHE_MAX || this.rollupTail.size > TAIL_CACHE_MAX) this.dropRollupCache();
    for (const u of tails) {
      if (u.r === undefined) {
        if (u.chunks) this.rawTail.set(u.id, ownChunks(u.chunks as ReadonlyArray<Chunk<StoredValue>>));
        else this.rawTail.delete(u.id);
        continue;
      }
      let entry = this.rollupTail.get(u.id);
      if (!entry) this.rollupTail.set(u.id, (entry = new Array(RESOLUTIONS.length)));
      entry[u.r] = u.chunks as ReadonlyArray<Chunk<Agg>> | undefined;
    }
    const durable = (async () => {
      // Only a failed write since this commit was prepared voids it: a commit before it that
      // was itself voided (prepared from a failed one) left nothing this one was prepared from.
      if (before) await before.catch(() => undefined);
      if (this.failures !== failures) {
        await batch.close();
        throw notWritten();
      }
      try {
        // write() closes the batch itself, also when it fails.
        await batch.write({ sync: this.options.sync ?? true });
      } catch (err) {
        throw this.failed(err);
      }
      this.seq = Math.max(this.seq, seq);
      this.current.apply(currentUpdates);
      for (let i = 0; i < series.length; i++) {
        const id = series[i]!.id;
        const value = newest[i]!;
        if (isNewer(value, this.latestById.get(id))) this.latestById.set(id, value);
        if (this.pendingLatest.get(id) === value) this.pendingLatest.delete(id);
      }
    })();
    this.writing = durable;
    // Observed by the next commit and by GroupCommit; this only keeps it from counting as unhandled meanwhile.
    durable.then(
      () => {
        if (this.writing === durable) this.writing = undefined;
      },
      () => {
        if (this.writing === durable) this.writing = undefined;
      },
    );
    return { durable };
  }

  /**
   * A commit's write failed: every commit prepared from it is void. Drops the cached newest
   * chunks and buckets (they may be ahead of the disk), forgets readings and sequence numbers
   * not on disk, enters the read-only alarm state. Returns the error for the commit's writers.
   */
  private failed(err: unknown): OutpostError {
    this.failures++;
    this.torn = true;
    this.pendingLatest.clear();
    // What prepared commits left unwritten never reached the disk: `current` says what did.
    this.unwritten.clear();
    this.preparedSeq = this.seq;
    return this.failedPreparation(err);
  }

  /**
   * A commit failed while it was prepared (a read, an encoding): it took no sequence numbers
   * or readings yet, and the commit before it (maybe still being written) stays valid; only
   * the caches, which it may have changed in place, are dropped. Read-only alarm state.
   */
  private failedPreparation(err: unknown): OutpostError {
    this.dropRollupCache();
    const message = (err as Error).message;
    this.alarm.raise(message);
    return new OutpostError('STORAGE_WRITE_FAILED', `LevelDB batch failed: ${message}`, { cause: err });
  }

  private rawSpace(id: string): Space<StoredValue> {
    return { name: `p!${id}`, keyOf: (t) => pointKey(id, t), blockMs: RAW_BLOCK_MS, codec: rawCodec, mode: 'tail', liveMax: LIVE_MAX };
  }

  private rollupSpace(r: number, id: string): Space<Agg> {
    return this.rollupSeries(r, id);
  }

  /** The same series as rollupSpace, for the append path: its entries may be single readings. */
  private rollupAppendSpace(r: number, id: string): Space<RollupEntry> {
    return this.rollupSeries(r, id);
  }

  /** The same series as the general write path reads and writes it: one-reading buckets as readings (see ownAgg). */
  private rollupWriteSpace(r: number, id: string): Space<RollupEntry> {
    const res = RESOLUTIONS[r]!;
    return {
      name: `r!${res.name}!${id}`,
      keyOf: (t) => rollupKey(res.name, id, t),
      blockMs: rollupBlockMs(res.ms),
      codec: this.entryCodec,
      mode: 'head',
      liveMax: ROLLUP_LIVE_MAX,
      // The exact current bucket is an aggregate (a copy: see CurrentBuckets.overlay).
      overlay: (ts, es) => this.current.overlay(id, r, ts, es as Agg[]),
    };
  }

  private rollupSeries(r: number, id: string): Space<Agg, RollupEntry> {
    const res = RESOLUTIONS[r]!;
    return {
      name: `r!${res.name}!${id}`,
      keyOf: (t) => rollupKey(res.name, id, t),
      blockMs: rollupBlockMs(res.ms),
      codec: this.aggCodec,
      mode: 'head',
      liveMax: ROLLUP_LIVE_MAX,
      overlay: (ts, es) => this.current.overlay(id, r, ts, es),
    };
  }

  /**
   * Raw points of the batch into their datapoints' chunks, where that needs no read (appends,
   * the cached newest chunks). Returns the series that need one (writeRawRead).
   */
  private writeRaw(series: Series[], sink: Sink, tails: TailUpdate[]): Series[] {
    const later: Series[] = [];
    for (const s of series) {
      const newest = this.newestRawTime(s.id);
      const cached = this.rawTail.get(s.id);
      if (cached && s.ts[0]! > newest && extendInPlace(cached, s.ts, s.vals, RAW_BLOCK_MS, LIVE_MAX, storedCopy)) {
        const last = cached[cached.length - 1]!;
        sink.put(last.key, rawCodec.encode(last.ts, last.es));
        continue;
      }
      const tail = this.writeSeriesInMemory(this.rawSpace(s.id), cached, newest, s.ts, s.vals, sink);
      if (tail === NEEDS_READ) later.push(s);
      else tails.push({ id: s.id, chunks: tail });
    }
    return later;
  }

  /** Raw points of series whose chunks must be read first (late values, overwrites). */
  private async writeRawRead(later: Series[], sink: Sink, tails: TailUpdate[]): Promise<void> {
    const results = await inParallel(later, READ_PARALLEL, async (s) => {
      const own = new OpList();
      const newest = this.newestRawTime(s.id);
      const same: Unchanged<StoredValue> = { flags: new Uint8Array(s.ts.length), count: 0, equal: sameReading };
      const tail = await this.writeSeries(this.rawSpace(s.id), this.rawTail.get(s.id), newest, s.ts, s.vals, own, same);
      if (same.count > 0) s.unchanged = same.flags;
      return { own, tail };
    });
    for (let i = 0; i < later.length; i++) {
      results[i]!.own.replay(sink);
      tails.push({ id: later[i]!.id, chunks: results[i]!.tail });
    }
  }

  /** Rollup buckets the batch changed (collected on each series by rollupUpdates) into their chunks. */
  private async writeRollups(series: Series[], sink: Sink, tails: TailUpdate[]): Promise<void> {
    const later: Array<{ s: Series; r: number }> = [];
    for (const s of series) {
      const cached = this.rollupTail.get(s.id);
      for (let r = 0; r < RESOLUTIONS.length; r++) {
        const c = s.changes[r];
        if (!c) continue;
        if (!c.sorted) sortChanges(c);
        const newest = this.newestBucket(s.id, RESOLUTIONS[r]!.ms);
        // A bucket whose disk state may be older, written now (exact): it needs no overlay.
        const stale = this.staleBucket(s.id, r);
        if (stale !== undefined && c.ts.includes(stale)) this.writtenExact(s.id, r, stale);
        const tail = this.writeSeriesInMemory(this.rollupWriteSpace(r, s.id), cached?.[r], newest, c.ts, c.es, sink);
        if (tail === NEEDS_READ) later.push({ s, r });
        else tails.push({ id: s.id, r, chunks: ownRollupTail(tail) });
      }
    }
    const results = await inParallel(later, READ_PARALLEL, async ({ s, r }) => {
      const own = new OpList();
      const newest = this.newestBucket(s.id, RESOLUTIONS[r]!.ms);
      const c = s.changes[r]!;
      return { own, tail: await this.writeSeries(this.rollupWriteSpace(r, s.id), this.rollupTail.get(s.id)?.[r], newest, c.ts, c.es, own) };
    });
    for (let i = 0; i < later.length; i++) {
      results[i]!.own.replay(sink);
      tails.push({ id: later[i]!.s.id, r: later[i]!.r, chunks: ownRollupTail(results[i]!.tail) });
    }
  }

  /**
   * Writes changes (times ascending; a null entry deletes) into one chunked series whose
   * newest stored time before this batch is `newest`; `tail` holds its newest chunks when
   * cached. Without a read: appends (extending a small newest chunk, or new chunks) and
   * entries that all lie inside the cached newest chunks. Otherwise returns NEEDS_READ and
   * writes nothing; `writeSeries` does it then. Returns the series' newest chunks afterwards
   * (undefined: not known).
   */
  private writeSeriesInMemory<E>(space: Space<E>, tail: ReadonlyArray<Chunk<E>> | undefined, newest: number, ts: number[], es: Array<E | null>, sink: Sink): ReadonlyArray<Chunk<E>> | undefined | typeof NEEDS_READ {
    if (ts[0]! <= newest) {
      if (!tail || ts[0]! < tail[0]!.ts[0]!) return NEEDS_READ;
      const head = tail[tail.length - 1]!;
      if (space.mode === 'head' && ts.length === 1 && head.ts.length === 1 && head.ts[0] === ts[0] && es[0] !== null) {
        // The common case of live data: the current bucket, alone in its chunk, updated.
        const chunk: Chunk<E> = { key: head.key, ts: [ts[0]!], es: [es[0]!] };
        sink.put(chunk.key, space.codec.encode(chunk.ts, chunk.es));
        return tail.length > 1 ? [tail[0]!, chunk] : [chunk];
      }
      // The chunk before the current bucket would hold its entries, the current one unless this batch replaces it, and all new but the newest.
      if (space.mode === 'head' && tail.length > 1 && ts[0]! >= head.ts[0]! && tail[0]!.ts.length + ts.length - (ts[0] === head.ts[0] ? 1 : 0) > space.liveMax) {
        // The current bucket and newer ones, more than the chunk before it may take (bulk): leave that chunk as it is.
        const m = mergeEntries([head], ts, es);
        return this.rewrite(space, [head], m.ts, m.es, space.mode, sink);
      }
      // Everything from the cached newest chunks' start on: no other chunk can overlap.
      const m = mergeEntries(tail, ts, es);
      return this.rewrite(space, tail, m.ts, m.es, space.mode, sink);
    }
    return this.append(space, tail, ts, es, sink);
  }

  /** Entries all newer than anything stored: they extend the newest chunks or start new ones. */
  private append<E>(space: Space<E>, tail: ReadonlyArray<Chunk<E>> | undefined, ts: number[], es: Array<E | null>, sink: Sink): ReadonlyArray<Chunk<E>> | undefined {
    let involved: ReadonlyArray<Chunk<E>> = NONE;
    const last = tail?.[tail.length - 1];
    const block = blockStart(ts[0]!, space.blockMs);
    if (last && space.mode === 'head') {
      // The head (newest bucket, alone in its chunk) joins the small chunk before it, unless
      // this batch brings more buckets than that chunk may hold (a bulk import): rewriting
      // it with every batch wrote each bucket many times over.
      const body = tail!.length > 1 ? tail![tail!.length - 2] : undefined;
      involved = body && body.ts.length + ts.length <= space.liveMax && blockStart(body.ts[0]!, space.blockMs) === block ? [body, last] : [last];
    } else if (last && last.ts.length < space.liveMax && blockStart(last.ts[0]!, space.blockMs) === block) involved = [last];
    const m = involved.length === 0 ? withoutDeletes(ts, es) : mergeEntries(involved, ts, es);
    if (m.ts.length === 0) return tail;
    const written = this.rewrite(space, involved, m.ts, m.es, space.mode, sink);
    // Chunks of the old tail that were not rewritten still come before the new ones.
    return written;
  }

  /** The read path of writeSeriesInMemory: late entries before the cached newest chunks (or none cached). */
  private async writeSeries<E>(
    space: Space<E>,
    tail: ReadonlyArray<Chunk<E>> | undefined,
    newest: number,
    ts: number[],
    es: Array<E | null>,
    sink: Sink,
    same?: Unchanged<E>,
  ): Promise<ReadonlyArray<Chunk<E>> | undefined> {
    let a = 0;
    while (a < ts.length && ts[a]! <= newest) a++;
    let current = tail;
    for (const [from, to] of clusterRanges(ts, a, space.blockMs)) {
      if (current && ts[from]! >= current[0]!.ts[0]!) {
        // From here on everything lies in (or after) the cached newest chunks: no other chunk can overlap.
        if (same && markUnchanged(current, ts, es, from, ts.length, same) === ts.length - from) return current;
        const m = mergeEntries(current, from === 0 ? ts : ts.slice(from), from === 0 ? es : es.slice(from));
        return this.rewrite(space, current, m.ts, m.es, space.mode, sink);
      }
      const involved: Array<Chunk<E>> = [];
      // Raw reads cover whole minutes: recomputing the 1 min buckets then needs no second read.
      // Raw chunks that none of the batch's readings land in are left out (keepMinutesOf).
      const raw = space.mode === 'tail';
      const lo = raw ? bucketStart(ts[from]!, RESOLUTIONS[0].ms) : ts[from]!;
      const hi = raw ? bucketStart(ts[to - 1]!, RESOLUTIONS[0].ms) + RESOLUTIONS[0].ms - 1 : ts[to - 1]!;
      for (const c of await this.chunksBeforeBatch(space, lo, hi, raw ? keepMinutesOf(ts) : undefined)) if (c.ts[c.ts.length - 1]! >= ts[from]! && c.ts[0]! <= ts[to - 1]!) involved.push(c);
      // Rewritten in groups of chunks next to each other on disk: one left out between two
      // (no reading of the batch in it) must stay between them. A group takes the batch's
      // entries before the chunk after it (none land in one left out).
      for (let g = 0, p = from; g < involved.length || p < to; ) {
        let end = g + 1;
        while (end < involved.length && (involved[end - 1]!.next === undefined || involved[end - 1]!.next === involved[end]!.ts[0])) end++;
        const group = g < involved.length ? involved.slice(g, end) : [];
        const limit = end < involved.length ? involved[end - 1]!.next! : Infinity;
        let q = p;
        while (q < to && ts[q]! < limit) q++;
        g = end;
        const [pf, pt] = [p, q];
        p = q;
        // No entry of the batch, or every one as stored already (the same file imported again): nothing to rewrite.
        if (pf === pt || (same && markUnchanged(group, ts, es, pf, pt, same) === pt - pf)) continue;
        const m = mergeEntries(group, ts.slice(pf, pt), es.slice(pf, pt));
        // When these chunks reach the series' newest entry they are its tail: cut them as such
        // (and cache them), so live updates after a restart stop reading.
        const isTail = m.ts.length > 0 && m.ts[m.ts.length - 1]! >= newest;
        const written = this.rewrite(
          space,
          group,
          m.ts,
          m.es,
          isTail ? space.mode : 'none',
          sink,
          group.map((c) => c.ts[0]!),
        );
        if (isTail) current = written;
        else if (current && group.some((c) => current!.some((k) => k.key === c.key))) current = undefined;
      }
    }
    if (a === ts.length) return current;
    return this.append(space, current, a === 0 ? ts : ts.slice(a), a === 0 ? es : es.slice(a), sink);
  }

  /** Operations replacing the `involved` chunks by the entries `ts/es`, cut into chunks; returns the newest one or two (what a tail cache holds). */
  private rewrite<E>(space: Space<E>, involved: ReadonlyArray<Chunk<E>>, ts: number[], es: E[], mode: CutMode, sink: Sink, starts?: readonly number[]): ReadonlyArray<Chunk<E>> | undefined {
    const pieces = cut(ts, es, space.blockMs, mode, space.liveMax, starts);
    const fresh: Array<Chunk<E>> = new Array(pieces.length);
    for (let i = 0; i < pieces.length; i++) fresh[i] = { key: space.keyOf(pieces[i]!.ts[0]!), ts: pieces[i]!.ts, es: pieces[i]!.es };
    for (const c of involved) {
      let kept = false;
      for (const f of fresh) if (f.key === c.key) kept = true;
      if (!kept) sink.del(c.key);
    }
    for (const c of fresh) sink.put(c.key, space.codec.encode(c.ts, c.es));
    if (fresh.length === 0) return undefined;
    return mode === 'head' && fresh.length > 1 ? fresh.slice(-2) : fresh.slice(-1);
  }

  /**
   * The chunks of a series holding entries in [from, to], ascending: the one holding
   * `from` (the last key at or below it, inside its block), then every key up to `to`.
   * The first may hold entries before `from`, the last entries after `to`. `descending`:
   * the same chunks, newest first.
   */
  private async *chunks<E>(space: Space<E>, from: number, to: number, snapshot?: Snapshot, descending = false, batchSize = 256, asStored = false): AsyncGenerator<Chunk<E>> {
    from = Math.max(0, from);
    if (to < from) return;
    // The chunk holding `from` starts before it: first when ascending, last when descending.
    const head = descending ? undefined : await this.chunkBefore(space, from, snapshot, asStored);
    if (head) yield head;
    const it = this.level.iterator({ gte: space.keyOf(from), lte: space.keyOf(to), reverse: descending, ...(snapshot ? { snapshot } : {}) });
    try {
      for (let entries = await it.nextv(batchSize); entries.length > 0; entries = await it.nextv(batchSize)) {
        for (const [key, value] of entries) {
          const d = space.codec.decode(pointTime(key), value);
          if (!asStored) space.overlay?.(d.ts, d.es);
          yield { key, ts: d.ts, es: d.es };
        }
      }
    } finally {
      await it.close();
    }
    const tail = descending ? await this.chunkBefore(space, from, snapshot, asStored) : undefined;
    if (tail) yield tail;
  }

  /**
   * The chunks holding entries in [from, to] as they are on disk before the current batch,
   * read once per commit: the same ranges are needed to fill rollups' previous values, to
   * recompute buckets and to rewrite chunks (a re-imported file touches every one of them).
   */
  private async chunksBeforeBatch<E>(space: Space<E>, from: number, to: number, keep?: Keep): Promise<Array<Chunk<E>>> {
    const reads = this.commitReads;
    const known = reads?.get(space.name)?.find((r) => r.from <= from && r.to >= to);
    if (known) return (known.chunks as Array<Chunk<E>>).filter((c) => c.ts[c.ts.length - 1]! >= from && c.ts[0]! <= to);
    // The commit before is still being written: the disk is behind the prepared state until
    // then. If that write fails, this commit is void anyway (its failure check after preparing).
    if (this.diskBehind) await this.diskBehind.catch(() => undefined);
    const chunks = await this.readChunks(space, from, to, keep);
    if (reads) {
      let list = reads.get(space.name);
      if (!list) reads.set(space.name, (list = []));
      list.push({ from, to, chunks });
    }
    return chunks;
  }

  /**
   * What `chunks` yields (with the overlay), read with one iterator instead of two: backwards
   * from `to` down to the chunk holding `from` (the last key at or below it, inside its block).
   * A re-import reads a few chunks per datapoint and resolution with every commit; creating
   * LevelDB iterators was a large part of its cost. Keys beyond the chunk holding `from` that
   * the iterator hands over in the same step are not decoded.
   */
  private async readChunks<E>(space: Space<E>, from: number, to: number, keep?: Keep): Promise<Array<Chunk<E>>> {
    from = Math.max(0, from);
    const out: Array<Chunk<E>> = [];
    if (to < from) return out;
    const fromKey = space.keyOf(from);
    const it = this.level.iterator({ gte: space.keyOf(blockStart(from, space.blockMs)), lte: space.keyOf(to), reverse: true });
    try {
      let size = 4;
      // The first time of the chunk after the current one (the one read just before it).
      let next: number | undefined;
      read: for (let entries = await it.nextv(size); entries.length > 0; entries = await it.nextv((size = Math.min(256, size * 4)))) {
        for (const [key, value] of entries) {
          const start = pointTime(key);
          const before = key < fromKey;
          // Nothing of the batch lands in it (up to the next chunk): left out, not decoded.
          if (keep && !keep(Math.max(start, from), next ?? to + 1)) {
            next = start;
            if (before) break read;
            continue;
          }
          const d = space.codec.decode(start, value);
          if (!before || d.ts[d.ts.length - 1]! >= from) {
            space.overlay?.(d.ts, d.es);
            out.push(next === undefined ? { key, ts: d.ts, es: d.es } : { key, ts: d.ts, es: d.es, next });
          }
          next = start;
          if (before) break read;
        }
      }
    } finally {
      await it.close();
    }
    return out.reverse();
  }

  /** The chunk that starts before `from` (inside its block) and holds entries at or after it, if any. */
  private async chunkBefore<E>(space: Space<E>, from: number, snapshot: Snapshot | undefined, asStored = false): Promise<Chunk<E> | undefined> {
    const fromKey = space.keyOf(from);
    const lo = space.keyOf(blockStart(from, space.blockMs));
    if (lo >= fromKey) return undefined;
    const found = await this.level.iterator({ gte: lo, lt: fromKey, reverse: true, limit: 1, ...(snapshot ? { snapshot } : {}) }).all();
    if (found.length === 0) return undefined;
    const [key, value] = found[0]!;
    const d = space.codec.decode(pointTime(key), value);
    if (!asStored) space.overlay?.(d.ts, d.es);
    return d.ts[d.ts.length - 1]! >= from ? { key, ts: d.ts, es: d.es } : undefined;
  }

  /**
   * Rollup buckets touched by a batch, with their new aggregates (null: now empty, delete).
   * Appending (or prepending) to a bucket updates it in place; a value landing inside a
   * bucket's time span (late value or overwrite) recomputes that bucket: 1 min from raw
   * points, coarser ones from the next finer rollup, so no recompute reads more than 60.
   */
  private async rollupUpdates(seriesList: Series[]): Promise<void> {
    // A run: the batch's points of one datapoint inside one bucket of one resolution
    // (entries [from, to) of the series, sorted by time). All work is per run, not per
    // point; a run's `agg` starts as the bucket's current aggregate (from the cached
    // newest chunk, read from disk, or none for a bucket newer than anything stored).
    const runs: Run[][] = RESOLUTIONS.map(() => []);
    const toRead: Run[] = [];
    for (const series of seriesList) {
      const { id, ts } = series;
      const cache = this.rollupTail.get(id);
      for (let r = 0; r < RESOLUTIONS.length; r++) {
        const ms = RESOLUTIONS[r]!.ms;
        const latestBucket = this.newestBucket(id, ms);
        const tail = cache?.[r];
        const own: Run[] = (series.runs[r] = []);
        // The bucket's aggregate before the batch: from the cached newest chunks, or read.
        const fill = (run: Run): void => {
          if (run.bucket > latestBucket) run.agg = null;
          else if (tail && run.bucket >= tail[0]!.ts[0]!) {
            for (const c of tail) {
              const i = indexOfTime(c.ts, run.bucket);
              if (i < 0) continue;
              run.before = c.es[i]!;
              run.agg = run.before; // copied before it changes (most overwritten buckets are recomputed)
            }
          } else toRead.push(run);
        };
        for (let from = 0; from < ts.length; ) {
          const bucket = bucketStart(ts[from]!, ms);
          const end = bucket + ms;
          let to = from + 1;
          while (to < ts.length && ts[to]! < end) to++;
          const run: Run = { series, r, from, to, bucket, agg: null, before: null, carry: false, changed: false };
          fill(run);
          own.push(run);
          from = to;
        }
        // The batch moves past a bucket whose disk state may be older, without a reading in
        // it: that bucket is closed, and written as it is, exact.
        const stale = this.staleBucket(id, r);
        if (stale !== undefined && own[own.length - 1]!.bucket > stale && !own.some((run) => run.bucket === stale)) {
          const carry: Run = { series, r, from: 0, to: 0, bucket: stale, agg: null, before: null, carry: true, changed: false };
          fill(carry);
          own.splice(
            own.findIndex((run) => run.bucket > stale),
            0,
            carry,
          );
        }
        for (const run of own) runs[r]!.push(run);
      }
    }
    if (toRead.length > 0) await this.readBefore(toRead);
    for (let r = 0; r < RESOLUTIONS.length; r++) {
      const ms = RESOLUTIONS[r]!.ms;
      const recompute: Run[] = [];
      for (const run of runs[r]!) {
        if (!applyRun(run)) recompute.push(run);
        else if (run.carry && run.agg) run.changed = true;
      }
      // Clusters are independent (they read raw points or the finer level, final by now):
      // read up to READ_PARALLEL at once so LevelDB's thread pool overlaps the seeks.
      const all = clusters(recompute, ms);
      await inParallel(all, READ_PARALLEL, (cluster) => (r === 0 ? this.recomputeFromRaw(cluster, ms) : this.recomputeFromFiner(cluster, r - 1, ms)));
      // In bucket order (runs are, per series): the changes need no sorting.
      for (const run of runs[r]!) if (run.changed) addChange(run.series, r, run.bucket, run.agg);
    }
  }

  /**
   * Per datapoint and resolution, what prepared commits (applied once their preparation
   * succeeded) say about a bucket whose disk state may be older: its start, `null` when a
   * prepared commit wrote it exact, undefined when they say nothing (then `current`, the
   * durable side, tells). A failed write voids it all.
   */
  private readonly unwritten = new Map<string, Array<number | null | undefined>>();
  /** The running commit's marks for `unwritten`, applied once its preparation succeeded. */
  private commitMarks: Array<[string, number, number | null]> = [];

  /** The bucket of (id, r) whose disk state may be older than the exact one, if any. */
  private staleBucket(id: string, r: number): number | undefined {
    const prepared = this.unwritten.get(id)?.[r];
    if (prepared !== undefined) return prepared ?? undefined;
    return this.current.get(id, r)?.bucket;
  }

  private hasStale(id: string): boolean {
    for (let r = 0; r < RESOLUTIONS.length; r++) if (this.staleBucket(id, r) !== undefined) return true;
    return false;
  }

  /** This commit leaves bucket `bucket` of (id, r) unwritten; `exact` is its state. */
  private leftStale(id: string, r: number, bucket: number, exact: Agg): void {
    this.commitCurrent!.push({ id, r, current: { bucket, agg: copyAgg(exact) } });
    this.commitMarks.push([id, r, bucket]);
  }

  /** This commit writes bucket `bucket` of (id, r), which may be stale on disk, exact. */
  private writtenExact(id: string, r: number, bucket: number): void {
    this.commitCurrent!.push({ id, r, current: null, bucket });
    this.commitMarks.push([id, r, null]);
  }

  /** The state the next commit is prepared from: this commit's marks, its preparation done. */
  private applyMarks(): void {
    for (const [id, r, mark] of this.commitMarks) {
      let entry = this.unwritten.get(id);
      if (!entry) this.unwritten.set(id, (entry = new Array(RESOLUTIONS.length)));
      entry[r] = mark;
    }
    this.commitMarks = [];
  }

  /**
   * The rollups of a series whose points are all newer than anything stored, when every
   * bucket they extend is known without a read (cached, or newer than any stored): live
   * data, nearly every commit. Aggregates point by point, without the runs the general path
   * builds; a commit that only extends the current buckets updates the cached buckets in
   * place and rewrites each (alone in its chunk) with no further allocation. Returns false,
   * having done nothing, when the general path (rollupUpdates, writeRollups) is needed.
   * In-place updates are safe because a failed commit drops the caches (see commit).
   */
  private appendRollups(series: Series, sink: Sink, tails: TailUpdate[]): boolean {
    const { id, ts, vals } = series;
    const newestRaw = this.newestRawTime(id);
    if (ts[0]! <= newestRaw) return false;
    const newestAny = this.newestTime(id, newestRaw);
    const cache = this.rollupTail.get(id);
    const n = RESOLUTIONS.length;
    // Per resolution: the aggregate of the first point's bucket when it is the cached newest
    // one (updated in place), else null (a bucket newer than anything stored).
    const start = this.appendStart;
    for (let r = 0; r < n; r++) {
      const ms = RESOLUTIONS[r]!.ms;
      const b = bucketStart(ts[0]!, ms);
      start[r] = null;
      if (newestAny === -Infinity) continue;
      // A bucket whose disk state may be older is the cached head (its exact state, which
      // `append` rewrites when a later bucket starts); if not cached, the general path carries it.
      const stale = this.staleBucket(id, r);
      if (stale !== undefined) {
        const head = cache?.[r]?.[cache[r]!.length - 1];
        if (!head || head.ts[head.ts.length - 1] !== stale) return false;
      }
      if (b > bucketStart(newestAny, ms)) continue;
      // The first point's bucket is the newest that can be stored: the cached tail's newest entry, or empty.
      const tail = cache?.[r];
      if (!tail) return false;
      const head = tail[tail.length - 1]!;
      const last = head.ts.length - 1;
      if (head.ts[last] === b) {
        if (last !== 0) return false; // not alone in its chunk (never written by this version): the general path
        // In-place updates append: every point must come after the bucket's last reading. Not
        // so when the bucket holds readings newer than the newest raw one (raw points expired).
        if (head.es[0]!.lt >= ts[0]!) return false;
        start[r] = head.es[0]!;
      } else if (head.ts[last]! > b) return false;
    }
    // The readings as numbers once (NaN: does not count), then one pass per resolution.
    const count = ts.length;
    if (this.numeric.length < count) this.numeric = new Float64Array(Math.max(count, 2 * this.numeric.length));
    const nv = this.numeric;
    let numeric = 0;
    for (let i = 0; i < count; i++) {
      const v = numericValue(vals[i]!);
      nv[i] = v === undefined ? Number.NaN : v;
      if (v !== undefined) numeric++;
    }
    // Readings that are not numbers move the newest time on without touching the rollups: with
    // a bucket whose disk state may be older, the general path closes it (rollupUpdates).
    if (numeric < count && this.hasStale(id)) return false;
    if (numeric === 0) return true;
    for (let r = 0; r < n; r++) {
      const ms = RESOLUTIONS[r]!.ms;
      // The current bucket, its end, its aggregate (null while it holds one reading of this
      // batch, at index `single`: closed so, it is written as that reading, no aggregate made).
      let bucket = bucketStart(ts[0]!, ms);
      let end = bucket + ms;
      let cur: Agg | null = start[r]!;
      let single = -1;
      let touched = false;
      let closed: { ts: number[]; es: RollupEntry[] } | undefined;
      for (let i = 0; i < count; i++) {
        const v = nv[i]!;
        if (v !== v) continue; // NaN
        const t = ts[i]!;
        if (t >= end) {
          if (touched) {
            closed ??= { ts: [], es: [] };
            closed.ts.push(bucket);
            closed.es.push(cur ?? singleEntry(ts, vals, single));
          }
          bucket = bucketStart(t, ms);
          end = bucket + ms;
          cur = null;
          single = -1;
        }
        // t is after the bucket's last reading (checked above).
        if (cur) appendReading(cur, t, v);
        else if (single >= 0) {
          appendReading((cur = singleAgg(ts[single]!, nv[single]!)), t, v);
          single = -1;
        } else single = i;
        touched = true;
      }
      // The newest bucket is cached and updated in place by the next commit: an aggregate.
      cur ??= singleAgg(ts[single]!, nv[single]!);
      if (!closed && cur === start[r]) {
        // Only the current bucket changed, in place: it stays exact in the cache and, once
        // durable, in `current`; its chunk is not rewritten (storage/current-buckets.ts).
        this.leftStale(id, r, bucket, cur);
        continue;
      }
      closed ??= { ts: [], es: [] };
      closed.ts.push(bucket);
      closed.es.push(cur);
      const newest = newestAny === -Infinity ? -Infinity : bucketStart(newestAny, ms);
      const written = this.writeSeriesInMemory(this.rollupAppendSpace(r, id), cache?.[r], newest, closed.ts, closed.es, sink);
      // Appends never need a read (checked above).
      if (written === NEEDS_READ) throw new OutpostError('INTERNAL', `rollup append of ${id} needed a read`);
      tails.push({ id, r, chunks: cachedRollupTail(written) });
      // The bucket that may be stale on disk is the cached head: `append` rewrote it, or the batch's first readings extended it.
      const stale = this.staleBucket(id, r);
      if (stale !== undefined) this.writtenExact(id, r, stale);
    }
    return true;
  }

  /** Scratch of appendRollups (one commit at a time): per resolution, the cached bucket the batch starts in. */
  private readonly appendStart = new Array<Agg | null>(RESOLUTIONS.length).fill(null);
  /** Scratch of appendRollups: a series' readings as numbers. */
  private numeric = new Float64Array(1024);

  /** Fills the aggregates before the batch of runs whose buckets are not in a cached newest chunk: one range read per cluster of nearby buckets. */
  private async readBefore(toRead: Run[]): Promise<void> {
    // Runs come series by series, resolution by resolution (rollupUpdates): each (series, r) a
    // group of consecutive runs, ascending but for a carried bucket.
    const groups: Run[][] = [];
    for (let a = 0; a < toRead.length; ) {
      const { series, r } = toRead[a]!;
      let b = a + 1;
      let ascending = true;
      for (; b < toRead.length && toRead[b]!.series === series && toRead[b]!.r === r; b++) if (toRead[b]!.bucket < toRead[b - 1]!.bucket) ascending = false;
      const g = toRead.slice(a, b);
      if (!ascending) g.sort((x, y) => x.bucket - y.bucket);
      groups.push(g);
      a = b;
    }
    const reads: Run[][] = [];
    for (const g of groups) {
      const blockMs = rollupBlockMs(RESOLUTIONS[g[0]!.r]!.ms);
      let current: Run[] = [];
      for (const run of g) {
        if (current.length > 0 && run.bucket - current[current.length - 1]!.bucket > blockMs) {
          reads.push(current);
          current = [];
        }
        current.push(run);
      }
      reads.push(current);
    }
    await inParallel(reads, READ_PARALLEL, async (cluster) => {
      const { r, series } = cluster[0]!;
      let from = cluster[0]!.bucket;
      let to = cluster[cluster.length - 1]!.bucket;
      // Whole buckets of the next coarser resolution: a bucket of it that the batch touched in
      // part is recomputed from these (recomputeFromFiner), and then needs no read of its own.
      const coarser = RESOLUTIONS[r + 1];
      if (coarser) {
        from = bucketStart(from, coarser.ms);
        to = bucketStart(to, coarser.ms) + coarser.ms - 1;
      }
      const chunks = await this.chunksBeforeBatch(this.rollupWriteSpace(r, series.id), from, to);
      // Runs and chunks both ascending: one walk.
      let c = 0;
      let i = 0;
      for (const run of cluster) {
        while (c < chunks.length) {
          const k = chunks[c]!;
          while (i < k.ts.length && k.ts[i]! < run.bucket) i++;
          if (i < k.ts.length) break;
          c++;
          i = 0;
        }
        if (c === chunks.length) break;
        if (chunks[c]!.ts[i] !== run.bucket) continue;
        run.before = chunks[c]!.es[i]!;
        run.agg = run.before; // copied before it changes
      }
    });
  }

  /**
   * Recomputes 1 min buckets from the raw points as they will be after this batch: one
   * range read for the whole cluster (a re-imported file overwrites thousands of buckets;
   * one iterator per bucket made that 16× slower than the first import).
   */
  private async recomputeFromRaw(cluster: Run[], ms: number): Promise<void> {
    const { id } = cluster[0]!.series;
    const from = cluster[0]!.bucket;
    const to = cluster[cluster.length - 1]!.bucket + ms - 1;
    const chunks = await this.chunksBeforeBatch(this.rawSpace(id), from, to, keepMinutesOf(cluster[0]!.series.ts));
    // One walk over the chunks (ascending, disjoint) and the batch's points (ascending): each
    // bucket's readings after the batch, in time order, the batch's winning at equal times.
    let c = 0;
    let i = 0;
    while (c < chunks.length && chunks[c]!.ts[chunks[c]!.ts.length - 1]! < from) c++;
    for (const run of cluster) {
      const { ts, vals } = run.series;
      const end = run.bucket + ms;
      // The bucket's one reading as it is stored (a number), or an aggregate of its own.
      let acc: RollupEntry | undefined;
      let own = false;
      let j = run.from;
      for (;;) {
        // The next stored reading in the bucket, if any.
        let dt = Infinity;
        while (c < chunks.length) {
          const k = chunks[c]!;
          while (i < k.ts.length && k.ts[i]! < run.bucket) i++;
          if (i < k.ts.length) {
            if (k.ts[i]! < end) dt = k.ts[i]!;
            break;
          }
          c++;
          i = 0;
        }
        const bt = j < run.to ? ts[j]! : Infinity;
        if (dt === Infinity && bt === Infinity) break;
        let p: StoredValue;
        if (bt <= dt) {
          p = vals[j]!;
          j++;
          if (bt === dt) i++;
        } else {
          p = chunks[c]!.es[i]!;
          i++;
        }
        const v = numericValue(p);
        if (v === undefined) continue;
        const t = Math.min(bt, dt);
        if (!acc) acc = typeof p.v === 'number' ? (p as Reading) : singleAgg(t, v);
        else {
          if (!own) {
            acc = ownAgg(acc);
            own = true;
          }
          appendReading(acc as Agg, t, v);
        }
      }
      run.agg = acc ?? null;
    }
  }

  /** Recomputes coarser buckets from the finer rollup as it will be after this batch (finer resolutions are final by now). */
  private async recomputeFromFiner(cluster: Run[], finer: number, ms: number): Promise<void> {
    const { series } = cluster[0]!;
    const from = cluster[0]!.bucket;
    const to = cluster[cluster.length - 1]!.bucket + ms - 1;
    // Without a read when this batch touched every finer bucket that had readings: then the
    // coarse bucket's count before the batch equals the sum of those buckets' counts before
    // it (rollups are consistent), and the new aggregate is the merge of their new ones.
    // That is the re-import case: every reading overwritten, one point per finer bucket.
    const finerRuns = series.runs[finer]!;
    // The finer runs inside each run's bucket: [range[2i], range[2i + 1]) (both ascending by bucket).
    const range = new Array<number>(2 * cluster.length);
    for (let i = 0, k = 0; i < cluster.length; i++) {
      const bucket = cluster[i]!.bucket;
      while (k < finerRuns.length && finerRuns[k]!.bucket < bucket) k++;
      let end = k;
      while (end < finerRuns.length && finerRuns[end]!.bucket < bucket + ms) end++;
      range[2 * i] = k;
      range[2 * i + 1] = end;
      k = end;
    }
    // Each run whose finer buckets this batch all touched (counts before the batch add up):
    // the merge of their new aggregates. The others (a coarse bucket the batch covers in part)
    // also merge the finer buckets on disk, read once for the cluster.
    let incomplete = false;
    for (let i = 0; i < cluster.length; i++) {
      const run = cluster[i]!;
      let n = 0;
      for (let j = range[2 * i]!; j < range[2 * i + 1]!; j++) {
        const before = finerRuns[j]!.before;
        if (before) n += countOf(before);
      }
      if (!run.before || countOf(run.before) !== n) {
        incomplete = true;
        range[2 * i + 1] = -1 - range[2 * i + 1]!; // marked: merged with the disk below
        continue;
      }
      const acc = new EntryMerge();
      for (let j = range[2 * i]!; j < range[2 * i + 1]!; j++) {
        const f = finerRuns[j]!.agg;
        if (f) acc.add(f);
      }
      run.agg = acc.entry ?? null;
    }
    if (!incomplete) return;
    const chunks = await this.chunksBeforeBatch(this.rollupWriteSpace(finer, series.id), from, to);
    let c = 0;
    let e = 0;
    for (let i = 0; i < cluster.length; i++) {
      if (range[2 * i + 1]! >= 0) continue;
      const run = cluster[i]!;
      const end = run.bucket + ms;
      const last = -1 - range[2 * i + 1]!;
      let j = range[2 * i]!;
      const acc = new EntryMerge();
      // The finer buckets in this one, in order: the batch's (its runs, null: now empty) over the disk's.
      for (;;) {
        let dt = Infinity;
        while (c < chunks.length) {
          const k = chunks[c]!;
          while (e < k.ts.length && k.ts[e]! < run.bucket) e++;
          if (e < k.ts.length) {
            if (k.ts[e]! < end) dt = k.ts[e]!;
            break;
          }
          c++;
          e = 0;
        }
        const bt = j < last ? finerRuns[j]!.bucket : Infinity;
        if (dt === Infinity && bt === Infinity) break;
        let agg: RollupEntry | null;
        if (bt <= dt) {
          agg = finerRuns[j]!.agg;
          j++;
          if (bt === dt) e++;
        } else {
          agg = chunks[c]!.es[e]!;
          e++;
        }
        if (agg) acc.add(agg);
      }
      run.agg = acc.entry ?? null;
    }
  }

  async query(id: string, range: RangeQuery = {}, snapshot?: Snapshot): Promise<StoredValue[]> {
    this.assertOpen();
    const limit = Math.min(range.limit ?? DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT);
    const from = Math.max(0, range.from ?? 0);
    const to = range.to ?? MAX_TIME;
    const out: StoredValue[] = [];
    if (to < 0 || limit <= 0) return out;
    const space = this.rawSpace(id);
    if (range.order === 'desc') {
      // Each chunk holds at least one reading: a small limit needs few chunks (loadLatest asks for 1).
      for await (const c of this.chunks(space, from, to, snapshot, true, Math.min(256, limit))) {
        for (let i = c.ts.length - 1; i >= 0; i--) {
          const t = c.ts[i]!;
          if (t > to || t < from) continue;
          out.push(c.es[i]!);
          if (out.length >= limit) return out;
        }
      }
      return out;
    }
    for await (const c of this.chunks(space, from, to, snapshot, false, Math.min(256, limit))) {
      for (let i = 0; i < c.ts.length; i++) {
        const t = c.ts[i]!;
        if (t < from || t > to) continue;
        out.push(c.es[i]!);
        if (out.length >= limit) return out;
      }
    }
    return out;
  }

  async queryAggregate(id: string, query: AggregateQuery): Promise<AggregatePoint[]> {
    this.assertOpen();
    validateAggregateQuery(query);
    const res = bestResolution(query.interval);
    const r = RESOLUTIONS.indexOf(res);
    const from = Math.max(0, bucketStart(query.from, query.interval));
    const to = bucketStart(query.to, query.interval) + query.interval - 1;
    const limit = Math.min(query.limit ?? MAX_AGGREGATE_INTERVALS, MAX_AGGREGATE_INTERVALS);
    const intervals: Array<{ t: number; agg: Agg }> = [];
    let current: { t: number; agg: Agg } | undefined;
    /** The last bucket before `from` (what `delta` counts the first interval from). */
    let before: Agg | undefined;
    const space = this.rollupSpace(r, id);
    scan: for await (const c of this.chunks(space, from, to)) {
      for (let i = 0; i < c.ts.length; i++) {
        const bucket = c.ts[i]!;
        if (bucket < from) {
          before = c.es[i]!;
          continue;
        }
        if (bucket > to) break scan;
        const t = bucketStart(bucket, query.interval);
        const agg = c.es[i]!;
        if (current && current.t === t) current.agg = mergeOrdered(current.agg, agg);
        else {
          if (intervals.length >= limit) break scan;
          current = { t, agg };
          intervals.push(current);
        }
      }
    }
    if (query.agg === 'delta' && !before && from > 0) {
      const prev = await this.level.iterator({ gte: rollupPrefix(res.name, id), lt: space.keyOf(from), reverse: true, limit: 1 }).all();
      if (prev.length > 0) {
        const [key, value] = prev[0]!;
        const d = space.codec.decode(pointTime(key), value);
        space.overlay?.(d.ts, d.es);
        for (let i = d.ts.length - 1; i >= 0; i--) {
          if (d.ts[i]! < from) {
            before = d.es[i]!;
            break;
          }
        }
      }
    }
    return finalize(intervals, query.agg, before);
  }

  latest(id: string): StoredValue | undefined {
    return this.latestById.get(id);
  }

  async putDatapoint(dp: Datapoint): Promise<void> {
    await this.putDatapoints([dp]);
  }

  async putDatapoints(dps: readonly Datapoint[]): Promise<void> {
    this.assertOpen();
    await this.batchWrite(
      dps.map((dp) => ({ type: 'put' as const, key: metaKey(dp.id), value: JSON.stringify(dp) })),
      this.options.sync ?? true,
    );
  }

  async listDatapoints(snapshot?: Snapshot): Promise<Datapoint[]> {
    this.assertOpen();
    const out: Datapoint[] = [];
    for await (const value of this.level.values({ gte: 'm!', lt: 'm!' + HIGH, ...TEXT, ...(snapshot ? { snapshot } : {}) })) {
      const parsed = DatapointSchema.safeParse(JSON.parse(text(value)));
      if (parsed.success) out.push(parsed.data);
    }
    return out;
  }

  /**
   * Outbox records are stored one commit per key: `o!<first seq>` → the commit's records
   * (storage/outbox-codec.ts), record i having seq first + i (commits take consecutive
   * ranges, so a commit's last seq is the next key's first - 1). Databases written before
   * hold JSON rows, or one record per key; all are read.
   */
  async readOutbox(afterSeq: number, limit: number): Promise<OutboxRecord[]> {
    this.assertOpen();
    const out: OutboxRecord[] = [];
    const start = Math.max(0, afterSeq, this.acked) + 1;
    if (limit <= 0 || start > this.seq) return out;
    // The commit holding `start` is the last key at or below it.
    let from = outboxKey(start);
    const holder = await this.level.keys({ gte: 'o!', lte: from, reverse: true, limit: 1 }).all();
    if (holder.length > 0) from = holder[0]!;
    const it = this.level.iterator({ gte: from, lt: 'o!' + HIGH });
    try {
      while (out.length < limit) {
        const entries = await it.nextv(64);
        if (entries.length === 0) break;
        for (const [key, value] of entries) {
          const first = outboxSeq(key);
          const rows = this.outboxRows(key, value);
          for (let i = Math.max(0, start - first); i < rows.length && out.length < limit; i++) {
            const [id, t, v, q] = rows[i]!;
            out.push(q ? { seq: first + i, id, t, v, q } : { seq: first + i, id, t, v });
          }
          if (out.length >= limit) break;
        }
      }
    } finally {
      await it.close();
    }
    return out;
  }

  /** The last decoded outbox commit: a drain reads one commit in several slices. */
  private outboxCache: { key: string; rows: OutboxRow[] } | undefined;

  private outboxRows(key: string, value: DbValue): OutboxRow[] {
    if (this.outboxCache?.key === key) return this.outboxCache.rows;
    const rows = decodeOutbox(value);
    this.outboxCache = { key, rows };
    return rows;
  }

  async ackOutbox(uptoSeq: number): Promise<number> {
    this.assertOpen();
    if (!Number.isSafeInteger(uptoSeq) || uptoSeq < 0) throw new OutpostError('BAD_REQUEST', `outbox sequence must be a non-negative integer, got ${uptoSeq}`);
    const upto = Math.min(uptoSeq, this.seq);
    if (upto <= this.acked) return 0;
    // Commits starting at or below upto + 1: every one but the last ends before the next
    // one's first seq, so it is wholly acknowledged; the last one is wholly acknowledged
    // only when it is the newest commit and upto reached the high-water mark. A commit
    // acknowledged in part stays on disk; reads skip its acknowledged records.
    const ops: BatchOp[] = [];
    let previous: string | undefined;
    for await (const key of this.level.keys({ gte: 'o!', lte: outboxKey(upto + 1) })) {
      if (previous !== undefined) ops.push({ type: 'del', key: previous });
      previous = key;
      if (ops.length >= 10_000) await this.batchWrite(ops.splice(0), false);
    }
    if (previous !== undefined && upto >= this.seq && outboxSeq(previous) <= upto) ops.push({ type: 'del', key: previous });
    ops.push({ type: 'put', key: ACKED_KEY, value: String(upto) });
    await this.batchWrite(ops, this.options.sync ?? true);
    const acknowledged = upto - this.acked;
    this.acked = upto;
    this.outboxCache = undefined;
    return acknowledged;
  }

  /**
   * Deletes a series' entries older than `cutoff` (raw points, or the rollup buckets of
   * `resolution`): every chunk below the cutoff's block in bounded batches, then, under the
   * commit lock, the older entries of the chunks in that block (rewritten without them).
   * Returns how many entries were deleted.
   */
  async deleteBefore(id: string, cutoff: number, resolution?: ResolutionName): Promise<number> {
    this.assertOpen();
    const r = resolution === undefined ? -1 : RESOLUTIONS.findIndex((x) => x.name === resolution);
    const space: Space<unknown> = r < 0 ? this.rawSpace(id) : this.rollupSpace(r, id);
    const prefix = r < 0 ? pointPrefix(id) : rollupPrefix(resolution!, id);
    cutoff = Math.max(0, cutoff);
    const blockKey = space.keyOf(blockStart(cutoff, space.blockMs));
    if (r < 0) {
      // Raw points a current bucket is recomputed from go: write that bucket exact first.
      await this.exclusive(async () => {
        if (RESOLUTIONS.some((_, res) => (this.current.get(id, res)?.bucket ?? Infinity) < cutoff)) await this.writeCurrentBuckets(id);
      });
    }
    let n = 0;
    // In slices of 10,000 keys, each under the commit lock: a commit never works from a
    // chunk (cached or read) that is being deleted, and ingest waits one slice at most.
    for (let more = true; more; ) {
      more = await this.exclusive(async () => {
        const ops: BatchOp[] = [];
        for await (const [key, value] of this.level.iterator({ gte: prefix, lt: blockKey, limit: 10_000 })) {
          ops.push({ type: 'del', key });
          n += space.codec.count(value);
        }
        if (ops.length > 0) await this.batchWrite(ops, false);
        this.forgetTails(id);
        return ops.length === 10_000;
      });
    }
    return this.exclusive(async () => {
      const ops: BatchOp[] = [];
      for await (const [key, value] of this.level.iterator({ gte: blockKey, lt: space.keyOf(cutoff) })) {
        const d = space.codec.decode(pointTime(key), value);
        let keep = 0;
        while (keep < d.ts.length && d.ts[keep]! < cutoff) keep++;
        n += keep;
        ops.push({ type: 'del', key });
        if (keep < d.ts.length) ops.push({ type: 'put', key: space.keyOf(d.ts[keep]!), value: space.codec.encode(d.ts.slice(keep), d.es.slice(keep)) });
      }
      if (ops.length > 0) await this.batchWrite(ops, false);
      this.forgetTails(id);
      return n;
    });
  }

  /** A cached newest chunk of `id` may be one just deleted or rewritten outside a commit. */
  private forgetTails(id: string): void {
    this.rawTail.delete(id);
    this.rollupTail.delete(id);
  }

  /** Deletes a datapoint's definition, raw points and rollups, not its outbox records (storage/datapoint-erase.ts). */
  async deleteDatapoint(id: string): Promise<DatapointDeletion> {
    this.assertOpen();
    const sync = this.options.sync ?? true;
    return eraseDatapoint(
      {
        db: this.level as unknown as EraseDb,
        exclusive: (fn) => this.exclusive(fn),
        write: (ops, durable) => this.batchWrite(ops, durable && sync),
        // Everything kept in memory per datapoint (runs under the commit lock: nothing prepared is ahead of the disk).
        forget: () => {
          this.latestById.delete(id);
          this.pendingLatest.delete(id);
          this.rollupFloor.delete(id);
          this.current.forget(id);
          this.unwritten.delete(id);
          this.forgetTails(id);
        },
      },
      id,
    );
  }

  /** Raw readings stored of `id` and their span (storage/datapoint-erase.ts). */
  async storedPoints(id: string): Promise<StoredPoints> {
    this.assertOpen();
    return storedPointsIn(this.level as unknown as EraseDb, id);
  }

  /** Runs `fn` while no commit runs (and no other exclusive section). */
  /** Runs `fn` alone: no commit is prepared or written meanwhile (retention deletes). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.serially(async () => {
      // A commit's write may still be in flight after its preparation ended.
      await this.writing?.catch(() => undefined);
      return fn();
    });
  }

  /** Runs `fn` after everything queued before it: commits are prepared one at a time. */
  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn);
    this.lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private lock: Promise<void> = Promise.resolve();

  /**
   * A read-only view of the database as it is now (one LevelDB snapshot): what a backup of a
   * running gateway reads, so it is one point-in-time image. Close it when done; it holds
   * back compaction of what changes meanwhile.
   */
  async readView(): Promise<StoreReadView> {
    this.assertOpen();
    const snapshot = this.level.snapshot();
    return {
      query: (id, range) => this.query(id, range, snapshot),
      listDatapoints: () => this.listDatapoints(snapshot),
      ids: () => this.idsUnder('p!', snapshot),
      close: () => snapshot.close(),
    };
  }

  /** Compacts a key range so deleted data gives its disk space back (LevelDB CompactRange). */
  async compact(start: string, end: string): Promise<void> {
    // classic-level has compactRange; `level`'s browser-compatible typings leave it out.
    await (this.level as unknown as { compactRange(s: string, e: string): Promise<void> }).compactRange(start, end);
  }

  /** Highest outbox sequence acknowledged upstream. */
  get ackedSeq(): number {
    return this.acked;
  }

  /**
   * Forgets cached rollup buckets after deletes outside the write path (retention,
   * restore), so the next write into such a bucket reads it from disk.
   */
  dropRollupCache(): void {
    this.rawTail.clear();
    this.rollupTail.clear();
  }

  /** Re-reads marks and latest values after a restore wrote into the database. */
  async reloadState(): Promise<void> {
    this.dropRollupCache();
    const seq = await this.level.get(SEQ_KEY, TEXT);
    if (seq !== undefined) this.seq = Math.max(this.seq, Number(text(seq)));
    this.preparedSeq = Math.max(this.preparedSeq, this.seq);
    const acked = await this.level.get(ACKED_KEY, TEXT);
    if (acked !== undefined) this.acked = Math.max(this.acked, Number(text(acked)));
    // The disk's newest point per id replaces the cached one unless the cache is newer.
    const cached = new Map(this.latestById);
    await this.loadLatest();
    for (const [id, v] of cached) {
      const disk = this.latestById.get(id);
      if (!disk || v.t > disk.t) this.latestById.set(id, v);
    }
    await this.recomputeCurrentBuckets();
  }

  /** Ids of datapoints that have keys under `prefix` (`p!` or `r!<res>!`), by seeking from one id's range to the next. */
  async idsUnder(prefix: string, snapshot?: Snapshot): Promise<string[]> {
    const ids: string[] = [];
    const it = this.level.keys({ gte: prefix, lt: prefix + HIGH, ...(snapshot ? { snapshot } : {}) });
    try {
      let key = await it.next();
      while (key !== undefined) {
        const id = key.slice(prefix.length, key.lastIndexOf('!'));
        ids.push(id);
        it.seek(prefix + id + '!' + HIGH);
        key = await it.next();
      }
    } finally {
      await it.close();
    }
    return ids;
  }

  get readOnly(): boolean {
    return this.alarm.readOnly;
  }

  stats(): StoreStats {
    return {
      pending: this.writer.pending,
      written: this.writer.written,
      commits: this.writer.commits,
      lastSeq: this.seq,
      ackedSeq: this.acked,
      outboxDepth: this.seq - this.acked,
      readOnly: this.alarm.readOnly,
      ...(this.alarm.error !== undefined ? { error: this.alarm.error } : {}),
      ...(this.room ? { room: { freeBytes: this.room.free, neededBytes: this.room.needed } } : {}),
    };
  }

  private assertOpen(): void {
    if (this.closed) throw new OutpostError('STORAGE_CLOSED');
  }
}

/** Classifies an open failure: a lock held by another process, corruption (with the repair command), or other I/O. */
function openError(path: string, err: unknown): OutpostError {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = (err as { code?: string }).code;
  const message = cause?.message ?? (err as Error).message;
  if (code === 'LEVEL_CORRUPTION' || cause?.code === 'LEVEL_CORRUPTION' || /corrupt/i.test(message)) {
    return new OutpostError('STORAGE_CORRUPT', `LevelDB at ${path} is damaged (${message}). Stop Outpost, back up the folder, then run: ${repairCommand(path)}`, {
      cause: err,
      details: { path, repair: repairCommand(path) },
    });
  }
  if (code === 'LEVEL_LOCKED' || cause?.code === 'LEVEL_LOCKED' || /lock/i.test(message)) {
    return new OutpostError('STORAGE_OPEN_FAILED', `LevelDB at ${path} is in use by another process (${message})`, { cause: err });
  }
  return new OutpostError('STORAGE_OPEN_FAILED', `cannot open LevelDB at ${path}: ${message}`, { cause: err });
}
