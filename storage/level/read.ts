import type { ChunkedSeries } from './series.js';
import { pointTime, rollupPrefix } from './keys.js';
import { MAX_TIME, type Snapshot, type StoreDb } from './db.js';
import {
  MAX_AGGREGATE_INTERVALS,
  RESOLUTIONS,
  bestResolution,
  bucketStart,
  finalize,
  mergeOrdered,
  validateAggregateQuery,
  type Agg,
  type AggregatePoint,
  type AggregateQuery,
} from '../rollups.js';
import { DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT, type RangeQuery, type StoredValue } from '../store.js';

/** Raw readings of `id` in a range, from its chunks (ascending, or newest first). */
export async function queryRaw(series: ChunkedSeries, id: string, range: RangeQuery = {}, snapshot?: Snapshot): Promise<StoredValue[]> {
  const limit = Math.min(range.limit ?? DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT);
  const from = Math.max(0, range.from ?? 0);
  const to = range.to ?? MAX_TIME;
  const out: StoredValue[] = [];
  if (to < 0 || limit <= 0) return out;
  const space = series.rawSpace(id);
  if (range.order === 'desc') {
    // Each chunk holds at least one reading: a small limit needs few chunks (loadLatest asks for 1).
    for await (const c of series.chunks(space, from, to, snapshot, true, Math.min(256, limit))) {
      for (let i = c.ts.length - 1; i >= 0; i--) {
        const t = c.ts[i]!;
        if (t > to || t < from) continue;
        out.push(c.es[i]!);
        if (out.length >= limit) return out;
      }
    }
    return out;
  }
  for await (const c of series.chunks(space, from, to, snapshot, false, Math.min(256, limit))) {
    for (let i = 0; i < c.ts.length; i++) {
      const t = c.ts[i]!;
      if (t < from || t > to) continue;
      out.push(c.es[i]!);
      if (out.length >= limit) return out;
    }
  }
  return out;
}

/** Aggregates per interval, from the coarsest rollup that tiles it (with the exact current buckets laid over). */
export async function queryAggregate(level: StoreDb, series: ChunkedSeries, id: string, query: AggregateQuery): Promise<AggregatePoint[]> {
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
  const space = series.rollupSpace(r, id);
  scan: for await (const c of series.chunks(space, from, to)) {
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
    const prev = await level.iterator({ gte: rollupPrefix(res.name, id), lt: space.keyOf(from), reverse: true, limit: 1 }).all();
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
