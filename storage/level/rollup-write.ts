import type { Caches } from './caches.js';
import type { ChunkedSeries } from './series.js';
import { OpList, READ_PARALLEL, inParallel, type Sink } from './db.js';
import { NEEDS_READ } from './spaces.js';
import { cachedRollupTail, ownRollupTail, singleEntry } from './entries.js';
import { sortChanges, type Series, type TailUpdate } from './batch.js';
import { OutpostError } from '../../core/errors.js';
import { RESOLUTIONS, appendReading, bucketStart, numericValue, singleAgg, type Agg, type RollupEntry } from '../rollups.js';

/**
 * Writes a batch's rollup buckets into their chunks: the append path of live data
 * (appendRollups, no read, no allocation per commit when only the current buckets move) and
 * the buckets the general path changed (writeRollups, after RollupMaintenance).
 */
export class RollupWriter {
  constructor(
    private readonly caches: Caches,
    private readonly series: ChunkedSeries,
  ) {}

  /** Rollup buckets the batch changed (collected on each series by rollupUpdates) into their chunks. */
  async writeRollups(series: Series[], sink: Sink, tails: TailUpdate[]): Promise<void> {
    const later: Array<{ s: Series; r: number }> = [];
    for (const s of series) {
      const cached = this.caches.rollupTail.get(s.id);
      for (let r = 0; r < RESOLUTIONS.length; r++) {
        const c = s.changes[r];
        if (!c) continue;
        if (!c.sorted) sortChanges(c);
        const newest = this.caches.newestBucket(s.id, RESOLUTIONS[r]!.ms);
        // A bucket whose disk state may be older, written now (exact): it needs no overlay.
        const stale = this.caches.staleBucket(s.id, r);
        if (stale !== undefined && c.ts.includes(stale)) this.caches.writtenExact(s.id, r, stale);
        const tail = this.series.writeSeriesInMemory(this.series.rollupWriteSpace(r, s.id), cached?.[r], newest, c.ts, c.es, sink);
        if (tail === NEEDS_READ) later.push({ s, r });
        else tails.push({ id: s.id, r, chunks: ownRollupTail(tail) });
      }
    }
    const results = await inParallel(later, READ_PARALLEL, async ({ s, r }) => {
      const own = new OpList();
      const newest = this.caches.newestBucket(s.id, RESOLUTIONS[r]!.ms);
      const c = s.changes[r]!;
      return {
        own,
        tail: await this.series.writeSeries(this.series.rollupWriteSpace(r, s.id), this.caches.rollupTail.get(s.id)?.[r], newest, c.ts, c.es, own),
      };
    });
    for (let i = 0; i < later.length; i++) {
      results[i]!.own.replay(sink);
      tails.push({ id: later[i]!.s.id, r: later[i]!.r, chunks: ownRollupTail(results[i]!.tail) });
    }
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
  appendRollups(series: Series, sink: Sink, tails: TailUpdate[]): boolean {
    const { id, ts, vals } = series;
    const newestRaw = this.caches.newestRawTime(id);
    if (ts[0]! <= newestRaw) return false;
    const newestAny = this.caches.newestTime(id, newestRaw);
    const cache = this.caches.rollupTail.get(id);
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
      const stale = this.caches.staleBucket(id, r);
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
    if (numeric < count && this.caches.hasStale(id)) return false;
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
        if (Number.isNaN(v)) continue;
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
        // durable, in `current`; its chunk is not rewritten (storage/level/current-buckets.ts).
        this.caches.leftStale(id, r, bucket, cur);
        continue;
      }
      closed ??= { ts: [], es: [] };
      closed.ts.push(bucket);
      closed.es.push(cur);
      const newest = newestAny === -Infinity ? -Infinity : bucketStart(newestAny, ms);
      const written = this.series.writeSeriesInMemory(this.series.rollupAppendSpace(r, id), cache?.[r], newest, closed.ts, closed.es, sink);
      // Appends never need a read (checked above).
      if (written === NEEDS_READ) throw new OutpostError('INTERNAL', `rollup append of ${id} needed a read`);
      tails.push({ id, r, chunks: cachedRollupTail(written) });
      // The bucket that may be stale on disk is the cached head: `append` rewrote it, or the batch's first readings extended it.
      const stale = this.caches.staleBucket(id, r);
      if (stale !== undefined) this.caches.writtenExact(id, r, stale);
    }
    return true;
  }

  /** Scratch of appendRollups (one commit at a time): per resolution, the cached bucket the batch starts in. */
  private readonly appendStart = new Array<Agg | null>(RESOLUTIONS.length).fill(null);
  /** Scratch of appendRollups: a series' readings as numbers. */
  private numeric = new Float64Array(1024);
}
