import { ROLLUP_LIVE_MAX, type Chunk } from './chunks.js';
import { appendReading, counterStep, isAgg, numericValue, singleAgg, toAgg, type Agg, type Reading, type RollupEntry } from '../rollups.js';
import type { StoredValue } from '../store.js';

/*
 * Rollup entries as the write paths share them (storage/DESIGN.md "Overwrites"): a bucket of
 * one reading is that reading, as read (rollupCodec `readings`) or as the stored point itself,
 * and entries are shared between a batch's changes wherever nothing changes them; an aggregate
 * is made only where one is updated (ownAgg), and the chunks left in the caches are copies
 * (ownRollupTail, ownChunks). A re-imported report of trend data overwrites every 1 min and
 * 15 min bucket it covers, each one reading: nine-field aggregates for them, read, recomputed
 * and copied, were most of its allocations and of its time.
 */

/** A copy with a literal's fixed shape (object spread of these was a slow path in V8). */
export function copyAgg(a: Agg): Agg {
  return { count: a.count, sum: a.sum, min: a.min, max: a.max, ft: a.ft, fv: a.fv, lt: a.lt, lv: a.lv, inc: a.inc };
}

export function firstTime(e: RollupEntry): number {
  return isAgg(e) ? e.ft : e.t;
}

export function lastTime(e: RollupEntry): number {
  return isAgg(e) ? e.lt : e.t;
}

export function countOf(e: RollupEntry): number {
  return isAgg(e) ? e.count : 1;
}

/** An aggregate of this batch's own, to update in place. */
export function ownAgg(e: RollupEntry): Agg {
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
export class EntryMerge {
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
export function ownRollupTail(chunks: ReadonlyArray<Chunk<RollupEntry>> | undefined): ReadonlyArray<Chunk<Agg>> | undefined {
  return chunks?.map((c) => ({ key: c.key, ts: c.ts, es: c.es.map(ownAgg) }));
}

/** The bucket entry of a bucket holding only the reading `vals[i]`: the stored point itself when its value is a number. */
export function singleEntry(ts: readonly number[], vals: readonly StoredValue[], i: number): RollupEntry {
  const p = vals[i]!;
  return typeof p.v === 'number' ? (p as Reading) : singleAgg(ts[i]!, numericValue(p)!);
}

/**
 * The newest rollup chunks of an append, as cached: aggregates only (the next commit updates
 * the newest bucket in place), and the chunk before the newest bucket only while appends
 * may still join it (fewer than ROLLUP_LIVE_MAX buckets): a bulk import's long chunks
 * would be converted for nothing. Without it a late bucket before the newest one is read.
 */
export function cachedRollupTail(chunks: ReadonlyArray<Chunk<RollupEntry>> | undefined): ReadonlyArray<Chunk<Agg>> | undefined {
  if (!chunks) return undefined;
  const keep = chunks.length > 1 && chunks[0]!.ts.length >= ROLLUP_LIVE_MAX ? chunks.slice(1) : chunks;
  return keep.map((c) => (c.es.every(isAgg) ? (c as Chunk<Agg>) : { key: c.key, ts: c.ts, es: c.es.map(toAgg) }));
}

/** A reading as the store keeps it: the caller's point may carry more and may be reused. */
export function storedCopy(p: StoredValue): StoredValue {
  return p.q ? { t: p.t, v: p.v, q: p.q } : { t: p.t, v: p.v };
}

/** Raw chunks to cache, holding copies of the readings (a raw tail holds at most LIVE_MAX). */
export function ownChunks(chunks: ReadonlyArray<Chunk<StoredValue>>): ReadonlyArray<Chunk<StoredValue>> {
  return chunks.map((c) => ({ key: c.key, ts: c.ts, es: c.es.map(storedCopy) }));
}
