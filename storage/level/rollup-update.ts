import type { Caches } from './caches.js';
import type { ChunkedSeries } from './series.js';
import { READ_PARALLEL, inParallel, indexOfTime } from './db.js';
import { keepMinutesOf } from './spaces.js';
import { rollupBlockMs } from './chunks.js';
import { EntryMerge, countOf, firstTime, lastTime, ownAgg } from './entries.js';
import { addChange, type Run, type Series } from './batch.js';
import { RESOLUTIONS, appendReading, bucketStart, mergeOrdered, numericValue, singleAgg, toAgg, type Agg, type Reading, type RollupEntry } from '../rollups.js';
import type { StoredValue } from '../store.js';

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

/**
 * Rollup maintenance of the general write path (late values, overwrites; storage/DESIGN.md
 * "Overwrites"): which buckets a batch changes, and their new entries, collected on each series
 * (`changes`) for writeRollups. Reads chunks through the series, cached state through the caches.
 */
export class RollupMaintenance {
  constructor(
    private readonly caches: Caches,
    private readonly series: ChunkedSeries,
  ) {}

  /**
   * Rollup buckets touched by a batch, with their new aggregates (null: now empty, delete).
   * Appending (or prepending) to a bucket updates it in place; a value landing inside a
   * bucket's time span (late value or overwrite) recomputes that bucket: 1 min from raw
   * points, coarser ones from the next finer rollup, so no recompute reads more than 60.
   */
  async rollupUpdates(seriesList: Series[]): Promise<void> {
    // A run: the batch's points of one datapoint inside one bucket of one resolution
    // (entries [from, to) of the series, sorted by time). All work is per run, not per
    // point; a run's `agg` starts as the bucket's current aggregate (from the cached
    // newest chunk, read from disk, or none for a bucket newer than anything stored).
    const runs: Run[][] = RESOLUTIONS.map(() => []);
    const toRead: Run[] = [];
    for (const series of seriesList) {
      const { id, ts } = series;
      const cache = this.caches.rollupTail.get(id);
      for (let r = 0; r < RESOLUTIONS.length; r++) {
        const ms = RESOLUTIONS[r]!.ms;
        const latestBucket = this.caches.newestBucket(id, ms);
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
        const stale = this.caches.staleBucket(id, r);
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
      const chunks = await this.series.chunksBeforeBatch(this.series.rollupWriteSpace(r, series.id), from, to);
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
    const chunks = await this.series.chunksBeforeBatch(this.series.rawSpace(id), from, to, keepMinutesOf(cluster[0]!.series.ts));
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
    const chunks = await this.series.chunksBeforeBatch(this.series.rollupWriteSpace(finer, series.id), from, to);
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
}
