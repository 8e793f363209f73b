import { Level } from 'level';
import { mkdir } from 'node:fs/promises';
import { OutpostError } from '../runtime/errors.js';
import { DatapointSchema, type Datapoint } from '../runtime/datapoints/model.js';
import { GroupCommit } from './group-commit.js';
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
  rollupBucket,
  rollupKey,
  rollupPrefix,
} from './keys.js';
import {
  MAX_AGGREGATE_INTERVALS,
  RESOLUTIONS,
  aggregatePoints,
  bestResolution,
  bucketStart,
  counterStep,
  decodeAgg,
  encodeAgg,
  finalize,
  mergeOrdered,
  numericValue,
  singleAgg,
  validateAggregateQuery,
  type Agg,
  type AggregatePoint,
  type AggregateQuery,
} from './rollups.js';
import {
  DEFAULT_QUERY_LIMIT,
  MAX_QUERY_LIMIT,
  decodeValue,
  encodeValue,
  isNewer,
  type OutboxRecord,
  type PointRecord,
  type RangeQuery,
  type WriteOptions,
  type Store,
  type StoreStats,
  type StoredValue,
} from './store.js';

export interface LevelStoreOptions {
  path: string;
  /** fsync every group commit (default true): acknowledged means durable. */
  sync?: boolean;
  /** Points per group commit at most. */
  maxBatch?: number;
  /** Points waiting for a commit at most; writers beyond wait (bounded memory). */
  maxPending?: number;
  /** While in the read-only alarm state, one write is let through this often to probe whether the disk recovered (default 5000 ms). */
  probeIntervalMs?: number;
  /** Called when storage enters (error set) or leaves (error undefined) the read-only alarm state. */
  onAlarm?: (error: string | undefined) => void;
}

/** One outbox record as stored: `[id, t, v]` or `[id, t, v, q]`. */
type OutboxRow = [string, number, StoredValue['v'], ('stale' | 'bad')?];

/** Points written with `{ outbox: false }` (restore): stored and rolled up, not queued for sync. */
const NO_OUTBOX = new WeakSet<PointRecord>();

/** A copy with a literal's fixed shape (object spread of these was a slow path in V8). */
function copyAgg(a: Agg): Agg {
  return { count: a.count, sum: a.sum, min: a.min, max: a.max, ft: a.ft, fv: a.fv, lt: a.lt, lv: a.lv, inc: a.inc };
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

/** Readings in the finer buckets of [from, to] that this batch touched, counted before the batch. */
function countBefore(finerRuns: Run[], from: number, to: number): number {
  let n = 0;
  for (const f of finerRuns) if (f.bucket >= from && f.bucket <= to) n += f.before?.count ?? 0;
  return n;
}

function isAscending(ts: number[]): boolean {
  for (let i = 1; i < ts.length; i++) if (ts[i]! <= ts[i - 1]!) return false;
  return true;
}

/** A batch's points of one datapoint, sorted by time, and their runs per resolution. */
interface Series {
  id: string;
  ts: number[];
  vals: StoredValue[];
  runs: Run[][];
}

/** The points of a series inside one bucket of resolution `r`: entries [from, to). */
interface Run {
  series: Series;
  r: number;
  from: number;
  to: number;
  bucket: number;
  key: string;
  /** The bucket's aggregate: before the batch, then after it. */
  agg: Agg | null;
  /** The bucket's aggregate before the batch (never mutated). */
  before: Agg | null;
}

/** A rollup bucket a commit writes (`agg`) or deletes (null). */
interface RollupChange {
  id: string;
  r: number;
  bucket: number;
  key: string;
  agg: Agg | null;
}

type BatchOp = { type: 'put'; key: string; value: string } | { type: 'del'; key: string };

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

/** Range reads in flight at once when a batch recomputes rollup buckets (late values, re-imports). */
const RECOMPUTE_PARALLEL = 32;

/** Bounds the newest-bucket cache (one entry per datapoint, holding its 4 resolutions) on a 1 GB device. */
const ROLLUP_CACHE_MAX = 100_000;

export class LevelStore implements Store {
  private readonly level: Level<string, string>;
  private readonly latestById = new Map<string, StoredValue>();
  /** Newest rollup bucket per datapoint and resolution (index into RESOLUTIONS), so the common case (appending) never reads. */
  private readonly rollupCache = new Map<string, Array<{ bucket: number; agg: Agg } | undefined>>();
  private readonly writer: GroupCommit<PointRecord>;
  private seq = 0;
  private acked = 0;
  private alarm: { error: string; lastProbe: number } | undefined;
  private closed = true;

  constructor(private readonly options: LevelStoreOptions) {
    this.level = new Level<string, string>(options.path, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    this.writer = new GroupCommit<PointRecord>({
      commit: (items) => this.commit(items),
      maxBatch: options.maxBatch ?? 5000,
      maxPending: options.maxPending ?? 100_000,
    });
  }

  /** The underlying LevelDB, for retention, backup and broker persistence in this folder. */
  get db(): Level<string, string> {
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
    try {
      await this.level.open();
    } catch (err) {
      throw openError(this.options.path, err);
    }
    this.closed = false;
    const seq = await this.level.get(SEQ_KEY);
    this.seq = seq === undefined ? 0 : Number(seq);
    const acked = await this.level.get(ACKED_KEY);
    this.acked = acked === undefined ? 0 : Number(acked);
    await this.loadLatest();
  }

  /** Newest point of every datapoint that has points (by seeking from one id's range to the next). */
  private async loadLatest(): Promise<void> {
    for (const id of await this.idsUnder('p!')) {
      const [last] = await this.query(id, { order: 'desc', limit: 1 });
      if (last) this.latestById.set(id, last);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.writer.flush();
    this.closed = true;
    await this.level.close();
  }

  async write(points: readonly PointRecord[], options: WriteOptions = {}): Promise<void> {
    if (this.closed) throw new OutpostError('STORAGE_CLOSED');
    if (points.length === 0) return;
    if (this.alarm) {
      const now = Date.now();
      if (now - this.alarm.lastProbe < (this.options.probeIntervalMs ?? 5000)) {
        // Same code as a failed write: the broker must not PUBACK, the client resends later.
        throw new OutpostError('STORAGE_WRITE_FAILED', `storage is read-only after a write error (${this.alarm.error}); retrying`);
      }
      this.alarm.lastProbe = now;
    }
    if (options.outbox === false) for (const p of points) NO_OUTBOX.add(p);
    await this.writer.add(points);
  }

  private async commit(points: PointRecord[]): Promise<void> {
    // Operations go straight into LevelDB's chained batch (no intermediate op objects).
    const batch = this.level.batch();
    const firstSeq = this.seq + 1;
    // The whole commit is one outbox record `o!<first seq>` holding its points in order
    // (seq = first + index): one put per commit instead of one per point.
    const outbox: OutboxRow[] = [];
    // The batch's own points by datapoint and time (last one wins), for rollups.
    const byId = new Map<string, Map<number, StoredValue>>();
    for (let i = 0; i < points.length; i++) {
      const p = points[i]!;
      const stored: StoredValue = p.q ? { t: p.t, v: p.v, q: p.q } : { t: p.t, v: p.v };
      batch.put(pointKey(p.id, p.t), encodeValue(stored));
      if (!NO_OUTBOX.has(p)) outbox.push(p.q ? [p.id, p.t, p.v, p.q] : [p.id, p.t, p.v]);
      let series = byId.get(p.id);
      if (!series) byId.set(p.id, (series = new Map()));
      series.set(p.t, stored);
    }
    const seq = this.seq + outbox.length;
    if (outbox.length > 0) {
      batch.put(outboxKey(firstSeq), JSON.stringify(outbox));
      batch.put(SEQ_KEY, String(seq));
    }
    let rollups: RollupChange[];
    let writing = false;
    try {
      rollups = await this.rollupUpdates(byId);
      for (const change of rollups) {
        if (change.agg) batch.put(change.key, encodeAgg(change.agg));
        else batch.del(change.key);
      }
      // The chained batch goes straight to the native batch; abstract-level's array form
      // clones and re-encodes every operation, which was most of the ingest CPU time.
      writing = true;
      await batch.write({ sync: this.options.sync ?? true });
    } catch (err) {
      // A batch that never reached write() holds native memory until closed; write() closes it itself.
      if (!writing) await batch.close();
      const message = (err as Error).message;
      if (!this.alarm) {
        this.alarm = { error: message, lastProbe: Date.now() };
        this.options.onAlarm?.(message);
      } else {
        this.alarm.error = message;
      }
      throw new OutpostError('STORAGE_WRITE_FAILED', `LevelDB batch failed: ${message}`, { cause: err });
    }
    this.seq = seq;
    if (this.alarm) {
      this.alarm = undefined;
      this.options.onAlarm?.(undefined);
    }
    for (const [id, series] of byId) {
      for (const stored of series.values()) if (isNewer(stored, this.latestById.get(id))) this.latestById.set(id, stored);
    }
    if (this.rollupCache.size > ROLLUP_CACHE_MAX) this.rollupCache.clear();
    for (const { id, r, bucket, agg } of rollups) {
      let entry = this.rollupCache.get(id);
      const cached = entry?.[r];
      if (agg && (!cached || bucket >= cached.bucket)) {
        if (!entry) this.rollupCache.set(id, (entry = new Array(RESOLUTIONS.length)));
        entry[r] = { bucket, agg };
      } else if (!agg && cached?.bucket === bucket) entry![r] = undefined;
    }
  }

  /**
   * Rollup buckets touched by a batch, with their new aggregates (null: now empty, delete).
   * Appending (or prepending) to a bucket updates it in place; a value landing inside a
   * bucket's time span (late value or overwrite) recomputes that bucket: 1 min from raw
   * points, coarser ones from the next finer rollup, so no recompute reads more than 60.
   */
  private async rollupUpdates(byId: Map<string, Map<number, StoredValue>>): Promise<RollupChange[]> {
    // A run: the batch's points of one datapoint inside one bucket of one resolution
    // (entries [from, to) of the series, sorted by time). All work is per run, not per
    // point; a run's `agg` starts as the bucket's current aggregate (a copy from the cache,
    // read from disk, or none for a bucket newer than anything stored).
    const runs: Run[][] = RESOLUTIONS.map(() => []);
    const toRead: Run[] = [];
    for (const [id, points] of byId) {
      let ts: number[];
      let vals: StoredValue[];
      if (points.size === 1) {
        const [[t, stored]] = points;
        ts = [t!];
        vals = [stored!];
      } else {
        ts = [...points.keys()];
        vals = [...points.values()];
        if (!isAscending(ts)) {
          const entries = [...points].sort((a, b) => a[0] - b[0]);
          ts = entries.map((e) => e[0]);
          vals = entries.map((e) => e[1]);
        }
      }
      const latest = this.latestById.get(id);
      const cache = this.rollupCache.get(id);
      const series: Series = { id, ts, vals, runs: [] };
      for (let r = 0; r < RESOLUTIONS.length; r++) {
        const ms = RESOLUTIONS[r]!.ms;
        const latestBucket = latest ? bucketStart(latest.t, ms) : -Infinity;
        const cached = cache?.[r];
        const own: Run[] = (series.runs[r] = []);
        for (let from = 0; from < ts.length; ) {
          const bucket = bucketStart(ts[from]!, ms);
          const end = bucket + ms;
          let to = from + 1;
          while (to < ts.length && ts[to]! < end) to++;
          const run: Run = { series, r, from, to, bucket, key: rollupKey(RESOLUTIONS[r]!.name, id, bucket), agg: null, before: null };
          if (bucket > latestBucket) run.agg = null;
          else if (cached && cached.bucket === bucket) {
            run.before = cached.agg;
            run.agg = copyAgg(cached.agg);
          }
          else toRead.push(run);
          runs[r]!.push(run);
          own.push(run);
          from = to;
        }
      }
    }
    if (toRead.length > 0) {
      const values = await this.level.getMany(toRead.map((run) => run.key));
      for (let i = 0; i < toRead.length; i++) {
        if (values[i] === undefined) continue;
        const run = toRead[i]!;
        run.before = decodeAgg(values[i]!);
        run.agg = copyAgg(run.before);
      }
    }
    const changes: RollupChange[] = [];
    for (let r = 0; r < RESOLUTIONS.length; r++) {
      const ms = RESOLUTIONS[r]!.ms;
      const recompute: Run[] = [];
      for (const run of runs[r]!) {
        const { ts, vals } = run.series;
        let cur = run.agg;
        let touched = false;
        let inside = false;
        for (let i = run.from; i < run.to; i++) {
          const t = ts[i]!;
          const v = numericValue(vals[i]!);
          if (v === undefined) {
            // Not a number: counts for nothing, unless it overwrites a reading inside the bucket.
            if (cur && t >= cur.ft && t <= cur.lt) {
              inside = true;
              break;
            }
            continue;
          }
          if (!cur) {
            cur = singleAgg(t, v);
            touched = true;
          } else if (t > cur.lt) {
            // In-place form of mergeOrdered(cur, singleAgg(t, v)): `cur` is this batch's copy.
            cur.count++;
            cur.sum += v;
            if (v < cur.min) cur.min = v;
            if (v > cur.max) cur.max = v;
            cur.inc += counterStep(cur.lv, v);
            cur.lt = t;
            cur.lv = v;
            touched = true;
          } else if (t < cur.ft) {
            cur = mergeOrdered(singleAgg(t, v), cur);
            touched = true;
          } else {
            // Inside the bucket's span (late value or overwrite): recompute the bucket.
            inside = true;
            break;
          }
        }
        if (inside) recompute.push(run);
        else if (touched) {
          run.agg = cur;
          changes.push({ id: run.series.id, r, bucket: run.bucket, key: run.key, agg: cur });
        }
      }
      // Clusters are independent (they read raw points or the finer level, final by now):
      // read up to RECOMPUTE_PARALLEL at once so LevelDB's thread pool overlaps the seeks.
      const all = clusters(recompute, ms);
      for (let i = 0; i < all.length; i += RECOMPUTE_PARALLEL) {
        await Promise.all(all.slice(i, i + RECOMPUTE_PARALLEL).map((cluster) => (r === 0 ? this.recomputeFromRaw(cluster, ms) : this.recomputeFromFiner(cluster, r - 1, ms))));
      }
      for (const cluster of all) for (const run of cluster) changes.push({ id: run.series.id, r, bucket: run.bucket, key: run.key, agg: run.agg });
    }
    return changes;
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
    const disk = new Map<number, Map<number, StoredValue>>();
    const it = this.level.iterator({ gte: pointKey(id, from), lte: pointKey(id, to) });
    try {
      for (let entries = await it.nextv(1000); entries.length > 0; entries = await it.nextv(1000)) {
        for (const [key, value] of entries) {
          const t = pointTime(key);
          const bucket = bucketStart(t, ms);
          let points = disk.get(bucket);
          if (!points) disk.set(bucket, (points = new Map()));
          points.set(t, decodeValue(t, value));
        }
      }
    } finally {
      await it.close();
    }
    for (const run of cluster) {
      const points = disk.get(run.bucket) ?? new Map<number, StoredValue>();
      // The batch's own points of this bucket overwrite what is on disk.
      for (let i = run.from; i < run.to; i++) points.set(run.series.ts[i]!, run.series.vals[i]!);
      const numeric: Array<{ t: number; v: number }> = [];
      for (const [t, stored] of points) {
        const v = numericValue(stored);
        if (v !== undefined) numeric.push({ t, v });
      }
      numeric.sort((a, b) => a.t - b.t);
      run.agg = aggregatePoints(numeric) ?? null;
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
    if (cluster.every((run) => run.before && run.before.count === countBefore(finerRuns, run.bucket, run.bucket + ms - 1))) {
      for (const run of cluster) {
        let acc: Agg | undefined;
        for (const f of finerRuns) if (f.bucket >= run.bucket && f.bucket < run.bucket + ms && f.agg) acc = mergeOrdered(acc, f.agg);
        run.agg = acc ?? null;
      }
      return;
    }
    const buckets = new Map<number, Agg | null>();
    const it = this.level.iterator({ gte: rollupKey(RESOLUTIONS[finer]!.name, series.id, from), lte: rollupKey(RESOLUTIONS[finer]!.name, series.id, to) });
    try {
      for (let entries = await it.nextv(1000); entries.length > 0; entries = await it.nextv(1000)) {
        for (const [key, value] of entries) buckets.set(rollupBucket(key), decodeAgg(value));
      }
    } finally {
      await it.close();
    }
    for (const run of series.runs[finer]!) if (run.bucket >= from && run.bucket <= to) buckets.set(run.bucket, run.agg);
    const ordered = [...buckets.keys()].sort((a, b) => a - b);
    let i = 0;
    for (const run of cluster) {
      let acc: Agg | undefined;
      while (i < ordered.length && ordered[i]! < run.bucket) i++;
      for (; i < ordered.length && ordered[i]! < run.bucket + ms; i++) {
        const agg = buckets.get(ordered[i]!);
        if (agg) acc = mergeOrdered(acc, agg);
      }
      run.agg = acc ?? null;
    }
  }

  async query(id: string, range: RangeQuery = {}): Promise<StoredValue[]> {
    this.assertOpen();
    const limit = Math.min(range.limit ?? DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT);
    const prefix = pointPrefix(id);
    const gte = range.from === undefined ? prefix : pointKey(id, Math.max(0, range.from));
    const lte = range.to === undefined ? prefix + HIGH : pointKey(id, range.to);
    const out: StoredValue[] = [];
    if (range.to !== undefined && range.to < 0) return out;
    // One native call per 1,000 entries instead of one promise per entry.
    const it = this.level.iterator({ gte, lte, limit, reverse: range.order === 'desc' });
    try {
      for (let entries = await it.nextv(1000); entries.length > 0; entries = await it.nextv(1000)) {
        for (const [key, value] of entries) out.push(decodeValue(pointTime(key), value));
      }
    } finally {
      await it.close();
    }
    return out;
  }

  async queryAggregate(id: string, query: AggregateQuery): Promise<AggregatePoint[]> {
    this.assertOpen();
    validateAggregateQuery(query);
    const res = bestResolution(query.interval);
    const from = bucketStart(query.from, query.interval);
    const to = bucketStart(query.to, query.interval) + query.interval - 1;
    const limit = Math.min(query.limit ?? MAX_AGGREGATE_INTERVALS, MAX_AGGREGATE_INTERVALS);
    const intervals: Array<{ t: number; agg: Agg }> = [];
    let current: { t: number; agg: Agg } | undefined;
    const it = this.level.iterator({ gte: rollupKey(res.name, id, Math.max(0, from)), lte: rollupKey(res.name, id, to) });
    try {
      // One native call per 1,000 buckets instead of one promise per bucket.
      scan: for (let entries = await it.nextv(1000); entries.length > 0; entries = await it.nextv(1000)) {
        for (const [key, value] of entries) {
          const bucket = rollupBucket(key);
          const t = bucketStart(bucket, query.interval);
          const agg = decodeAgg(value);
          if (current && current.t === t) current.agg = mergeOrdered(current.agg, agg);
          else {
            if (intervals.length >= limit) break scan;
            current = { t, agg };
            intervals.push(current);
          }
        }
      }
    } finally {
      await it.close();
    }
    let before: Agg | undefined;
    if (query.agg === 'delta') {
      for await (const value of this.level.values({ gte: rollupPrefix(res.name, id), lt: rollupKey(res.name, id, Math.max(0, from)), reverse: true, limit: 1 })) {
        before = decodeAgg(value);
      }
    }
    return finalize(intervals, query.agg, before);
  }

  latest(id: string): StoredValue | undefined {
    return this.latestById.get(id);
  }

  async putDatapoint(dp: Datapoint): Promise<void> {
    this.assertOpen();
    await this.level.put(metaKey(dp.id), JSON.stringify(dp), { sync: this.options.sync ?? true });
  }

  async listDatapoints(): Promise<Datapoint[]> {
    this.assertOpen();
    const out: Datapoint[] = [];
    for await (const value of this.level.values({ gte: 'm!', lt: 'm!' + HIGH })) {
      const parsed = DatapointSchema.safeParse(JSON.parse(value));
      if (parsed.success) out.push(parsed.data);
    }
    return out;
  }

  /**
   * Outbox records are stored one commit per key: `o!<first seq>` → `[[id, t, v, q?], …]`,
   * record i having seq first + i (commits take consecutive ranges, so a commit's last seq
   * is the next key's first - 1). Databases written before this layout hold one record per
   * key (`[id, t, v, q?]`); both are read.
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

  private outboxRows(key: string, value: string): OutboxRow[] {
    if (this.outboxCache?.key === key) return this.outboxCache.rows;
    const parsed = JSON.parse(value) as OutboxRow[] | OutboxRow;
    const rows = Array.isArray(parsed[0]) ? (parsed as OutboxRow[]) : [parsed as OutboxRow];
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
      if (ops.length >= 10_000) await this.level.batch(ops.splice(0));
    }
    if (previous !== undefined && upto >= this.seq && outboxSeq(previous) <= upto) ops.push({ type: 'del', key: previous });
    ops.push({ type: 'put', key: ACKED_KEY, value: String(upto) });
    await this.level.batch(ops, { sync: this.options.sync ?? true });
    const acknowledged = upto - this.acked;
    this.acked = upto;
    this.outboxCache = undefined;
    return acknowledged;
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
    this.rollupCache.clear();
  }

  /** Re-reads marks and latest values after a restore wrote into the database. */
  async reloadState(): Promise<void> {
    this.rollupCache.clear();
    const seq = await this.level.get(SEQ_KEY);
    if (seq !== undefined) this.seq = Math.max(this.seq, Number(seq));
    const acked = await this.level.get(ACKED_KEY);
    if (acked !== undefined) this.acked = Math.max(this.acked, Number(acked));
    // The disk's newest point per id replaces the cached one unless the cache is newer.
    const cached = new Map(this.latestById);
    await this.loadLatest();
    for (const [id, v] of cached) {
      const disk = this.latestById.get(id);
      if (!disk || v.t > disk.t) this.latestById.set(id, v);
    }
  }

  /** Ids of datapoints that have keys under `prefix` (`p!` or `r!<res>!`), by seeking from one id's range to the next. */
  async idsUnder(prefix: string): Promise<string[]> {
    const ids: string[] = [];
    const it = this.level.keys({ gte: prefix, lt: prefix + HIGH });
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

  stats(): StoreStats {
    return {
      pending: this.writer.pending,
      written: this.writer.written,
      commits: this.writer.commits,
      lastSeq: this.seq,
      ackedSeq: this.acked,
      outboxDepth: this.seq - this.acked,
      readOnly: this.alarm !== undefined,
      ...(this.alarm ? { error: this.alarm.error } : {}),
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
