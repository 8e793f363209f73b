import { OutpostError } from '../runtime/errors.js';
import type { Datapoint } from '../runtime/datapoints/model.js';
import {
  DEFAULT_QUERY_LIMIT,
  MAX_QUERY_LIMIT,
  isNewer,
  type OutboxRecord,
  type PointRecord,
  type RangeQuery,
  type Store,
  type StoreStats,
  type StoredValue,
} from './store.js';

/** In-memory store with the same contract as LevelStore; for tests and `--memory` runs. */
export class MemoryStore implements Store {
  private readonly series = new Map<string, StoredValue[]>();
  private readonly meta = new Map<string, Datapoint>();
  private readonly outbox: OutboxRecord[] = [];
  private readonly latestById = new Map<string, StoredValue>();
  private seq = 0;
  private written = 0;
  private commits = 0;
  private open_ = false;

  async open(): Promise<void> {
    this.open_ = true;
  }

  async close(): Promise<void> {
    this.open_ = false;
  }

  async write(points: readonly PointRecord[]): Promise<void> {
    if (!this.open_) throw new OutpostError('STORAGE_CLOSED');
    for (const p of points) {
      const value: StoredValue = p.q ? { t: p.t, v: p.v, q: p.q } : { t: p.t, v: p.v };
      let list = this.series.get(p.id);
      if (!list) this.series.set(p.id, (list = []));
      const i = lowerBound(list, p.t);
      if (list[i]?.t === p.t) list[i] = value;
      else list.splice(i, 0, value);
      this.outbox.push({ seq: ++this.seq, id: p.id, ...value });
      if (isNewer(p, this.latestById.get(p.id))) this.latestById.set(p.id, value);
    }
    this.written += points.length;
    this.commits++;
  }

  async query(id: string, range: RangeQuery = {}): Promise<StoredValue[]> {
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
    this.meta.set(dp.id, dp);
  }

  async listDatapoints(): Promise<Datapoint[]> {
    return [...this.meta.values()];
  }

  async readOutbox(afterSeq: number, limit: number): Promise<OutboxRecord[]> {
    return this.outbox.filter((r) => r.seq > afterSeq).slice(0, limit);
  }

  stats(): StoreStats {
    return { pending: 0, written: this.written, commits: this.commits, lastSeq: this.seq };
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
