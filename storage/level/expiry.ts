import type { Caches } from './caches.js';
import type { ChunkedSeries } from './series.js';
import type { CommitPipeline } from './commit.js';
import { blockStart } from './chunks.js';
import { HIGH, pointPrefix, pointTime, rollupPrefix } from './keys.js';
import { indexOfTime, type BatchOp, type StoreDb } from './db.js';
import type { Space } from './spaces.js';
import { RESOLUTIONS, type ResolutionName } from '../rollups.js';

/**
 * The primitives retention works with (storage/DESIGN.md "Retention"): deleting a series'
 * entries before a time in bounded slices under the commit lock, writing the exact current
 * buckets before the raw points they are recomputed from go, the oldest key of a series,
 * compaction. The policy (what goes when) is storage/retention.ts.
 */
export class Expiry {
  constructor(
    private readonly level: StoreDb,
    private readonly series: ChunkedSeries,
    private readonly caches: Caches,
    private readonly pipeline: CommitPipeline,
    private readonly sync: boolean,
  ) {}

  /**
   * Writes the exact current buckets of `id` to disk (before retention deletes the raw points
   * they are recomputed from). Runs alone (exclusive): nothing prepared is ahead of the disk.
   */
  private async writeCurrentBuckets(id: string): Promise<void> {
    const ops: BatchOp[] = [];
    for (let r = 0; r < RESOLUTIONS.length; r++) {
      const exact = this.caches.current.get(id, r);
      if (!exact) continue;
      const space = this.series.rollupSpace(r, id);
      // Read with the overlay: the chunk holding the bucket, as it should be.
      for await (const c of this.series.chunks(space, exact.bucket, exact.bucket)) {
        if (indexOfTime(c.ts, exact.bucket) >= 0) ops.push({ type: 'put', key: c.key, value: space.codec.encode(c.ts, c.es) });
      }
    }
    if (ops.length > 0) await this.pipeline.write(ops, this.sync);
    this.caches.current.forget(id);
    this.caches.unwritten.delete(id);
    this.caches.forgetTails(id);
  }

  /**
   * Deletes a series' entries older than `cutoff` (raw points, or the rollup buckets of
   * `resolution`): every chunk below the cutoff's block in bounded batches, then, under the
   * commit lock, the older entries of the chunks in that block (rewritten without them).
   * Returns how many entries were deleted.
   */
  async deleteBefore(id: string, cutoff: number, resolution?: ResolutionName): Promise<number> {
    const r = resolution === undefined ? -1 : RESOLUTIONS.findIndex((x) => x.name === resolution);
    const space: Space<unknown> = r < 0 ? this.series.rawSpace(id) : this.series.rollupSpace(r, id);
    const prefix = r < 0 ? pointPrefix(id) : rollupPrefix(resolution!, id);
    cutoff = Math.max(0, cutoff);
    const blockKey = space.keyOf(blockStart(cutoff, space.blockMs));
    if (r < 0) {
      // Raw points a current bucket is recomputed from go: write that bucket exact first.
      await this.pipeline.exclusive(async () => {
        if (RESOLUTIONS.some((_, res) => (this.caches.current.get(id, res)?.bucket ?? Infinity) < cutoff)) await this.writeCurrentBuckets(id);
      });
    }
    let n = 0;
    // In slices of 10,000 keys, each under the commit lock: a commit never works from a
    // chunk (cached or read) that is being deleted, and ingest waits one slice at most.
    for (let more = true; more; ) {
      more = await this.pipeline.exclusive(async () => {
        const ops: BatchOp[] = [];
        for await (const [key, value] of this.level.iterator({ gte: prefix, lt: blockKey, limit: 10_000 })) {
          ops.push({ type: 'del', key });
          n += space.codec.count(value);
        }
        if (ops.length > 0) await this.pipeline.write(ops, false);
        this.caches.forgetTails(id);
        return ops.length === 10_000;
      });
    }
    return this.pipeline.exclusive(async () => {
      const ops: BatchOp[] = [];
      for await (const [key, value] of this.level.iterator({ gte: blockKey, lt: space.keyOf(cutoff) })) {
        const d = space.codec.decode(pointTime(key), value);
        let keep = 0;
        while (keep < d.ts.length && d.ts[keep]! < cutoff) keep++;
        n += keep;
        ops.push({ type: 'del', key });
        if (keep < d.ts.length) ops.push({ type: 'put', key: space.keyOf(d.ts[keep]!), value: space.codec.encode(d.ts.slice(keep), d.es.slice(keep)) });
      }
      if (ops.length > 0) await this.pipeline.write(ops, false);
      this.caches.forgetTails(id);
      return n;
    });
  }

  /** Time of the oldest key of a series (`p!<id>!`, `r!<res>!<id>!`; undefined: none). */
  async oldestKeyTime(prefix: string): Promise<number | undefined> {
    for await (const k of this.level.keys({ gte: prefix, lt: prefix + HIGH, limit: 1 })) return pointTime(k);
    return undefined;
  }

  /** Compacts a key range so deleted data gives its disk space back (LevelDB CompactRange). */
  async compact(start: string, end: string): Promise<void> {
    // classic-level has compactRange; `level`'s browser-compatible typings leave it out.
    await (this.level as unknown as { compactRange(s: string, e: string): Promise<void> }).compactRange(start, end);
  }
}
