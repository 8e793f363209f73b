import { OutpostError } from '../core/errors.js';
import './errors.js';
import type { Datapoint } from '../core/datapoint.js';
import {
  DEFAULT_QUERY_LIMIT,
  MAX_QUERY_LIMIT,
  isNewer,
  type OutboxRecord,
  type PointRecord,
  type RangeQuery,
  type Store,
  type StoreSupports,
  type StoreStats,
  type StoredValue,
  type WriteOptions,
  type DatapointDeletion,
  type StoredPoints,
} from './store.js';
import {
  MAX_AGGREGATE_INTERVALS,
  bestResolution,
  bucketStart,
  finalize,
  mergeOrdered,
  numericValue,
  singleAgg,
  validateAggregateQuery,
  type Agg,
  type AggregatePoint,
  type AggregateQuery,
} from './rollups.js';

/**
 * In-memory store with the same contract as LevelStore; for tests and `--memory` runs.
 * It computes aggregates from raw points at query time, so the contract suite checks
 * LevelStore's incrementally maintained rollups against a brute-force reference.
 */
export class MemoryStore implements Store {
  /** Deleting a datapoint is the one capability beyond the contract this store has (storage/store.ts). */
  readonly supports: StoreSupports = { deleteDatapoint: true };
  private readonly series = new Map<string, StoredValue[]>();
  private readonly meta = new Map<string, Datapoint>();
  private readonly outbox: OutboxRecord[] = [];
  private readonly latestById = new Map<string, StoredValue>();
  private seq = 0;
  private acked = 0;
  private written = 0;
  private commits = 0;
  private open_ = false;

  async open(): Promise<void> {
    this.open_ = true;
  }

  async close(): Promise<void> {
    this.open_ = false;
  }

  async write(points: readonly PointRecord[], options: WriteOptions = {}): Promise<void> {
    this.assertOpen();
    const outbox = options.outbox ?? true;
    for (const p of points) {
      const value: StoredValue = p.q ? { t: p.t, v: p.v, q: p.q } : { t: p.t, v: p.v };
      let list = this.series.get(p.id);
      if (!list) this.series.set(p.id, (list = []));
      const i = lowerBound(list, p.t);
      if (list[i]?.t === p.t) list[i] = value;
      else list.splice(i, 0, value);
      if (outbox) this.outbox.push({ seq: ++this.seq, id: p.id, ...value });
      if (isNewer(p, this.latestById.get(p.id))) this.latestById.set(p.id, value);
    }
    this.written += points.length;
    this.commits++;
  }

  async query(id: string, range: RangeQuery = {}): Promise<StoredValue[]> {
    this.assertOpen();
    const list = this.series.get(id) ?? [];
    const limit = Math.min(range.limit ?? DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT);
    const from = range.from ?? -Infinity;
    const to = range.to ?? Infinity;
    const inRange = list.filter((p) => p.t >= from && p.t <= to);
    if (range.order === 'desc') inRange.reverse();
    return inRange.slice(0, limit);
  }

  latest(id: string): StoredValue | undefined {
    return this.latestById.get(id);
  }

  async putDatapoint(dp: Datapoint): Promise<void> {
    this.assertOpen();
    this.meta.set(dp.id, dp);
  }

  async putDatapoints(dps: readonly Datapoint[]): Promise<void> {
    this.assertOpen();
    for (const dp of dps) this.meta.set(dp.id, dp);
  }

  async listDatapoints(): Promise<Datapoint[]> {
    this.assertOpen();
    return [...this.meta.values()];
  }

  async readOutbox(afterSeq: number, limit: number): Promise<OutboxRecord[]> {
    this.assertOpen();
    return this.outbox.filter((r) => r.seq > afterSeq).slice(0, limit);
  }

  async ackOutbox(uptoSeq: number): Promise<number> {
    this.assertOpen();
    if (!Number.isSafeInteger(uptoSeq) || uptoSeq < 0) throw new OutpostError('BAD_REQUEST', `outbox sequence must be a non-negative integer, got ${uptoSeq}`);
    const upto = Math.min(uptoSeq, this.seq);
    if (upto <= this.acked) return 0;
    let n = 0;
    while (n < this.outbox.length && this.outbox[n]!.seq <= upto) n++;
    this.outbox.splice(0, n);
    this.acked = upto;
    return n;
  }

  async queryAggregate(id: string, query: AggregateQuery): Promise<AggregatePoint[]> {
    this.assertOpen();
    validateAggregateQuery(query);
    bestResolution(query.interval);
    const from = bucketStart(query.from, query.interval);
    const to = bucketStart(query.to, query.interval) + query.interval - 1;
    const limit = Math.min(query.limit ?? MAX_AGGREGATE_INTERVALS, MAX_AGGREGATE_INTERVALS);
    const intervals: Array<{ t: number; agg: Agg }> = [];
    let before: Agg | undefined;
    for (const p of this.series.get(id) ?? []) {
      const v = numericValue(p);
      if (v === undefined || p.t > to) continue;
      if (p.t < from) {
        before = singleAgg(p.t, v);
        continue;
      }
      const t = bucketStart(p.t, query.interval);
      const last = intervals[intervals.length - 1];
      if (last && last.t === t) last.agg = mergeOrdered(last.agg, singleAgg(p.t, v));
      else {
        if (intervals.length >= limit) break;
        intervals.push({ t, agg: singleAgg(p.t, v) });
      }
    }
    return finalize(intervals, query.agg, before);
  }

  /** Same contract as LevelStore's (outbox records stay); rollups are computed at query time here, so none are counted. */
  async deleteDatapoint(id: string): Promise<DatapointDeletion> {
    this.assertOpen();
    const points = this.series.get(id)?.length ?? 0;
    const definition = this.meta.delete(id);
    this.series.delete(id);
    this.latestById.delete(id);
    return { points, rollups: 0, definition };
  }

  async storedPoints(id: string): Promise<StoredPoints> {
    this.assertOpen();
    const list = this.series.get(id) ?? [];
    return list.length === 0 ? { points: 0, rollups: 0 } : { points: list.length, rollups: 0, oldest: list[0]!.t, newest: list[list.length - 1]!.t };
  }

  get readOnly(): boolean {
    return false;
  }

  stats(): StoreStats {
    return {
      pending: 0,
      written: this.written,
      commits: this.commits,
      lastSeq: this.seq,
      ackedSeq: this.acked,
      outboxDepth: this.outbox.length,
      readOnly: false,
    };
  }

  private assertOpen(): void {
    if (!this.open_) throw new OutpostError('STORAGE_CLOSED');
  }
}

function lowerBound(list: StoredValue[], t: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]!.t < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
