import type { Chunk } from './chunks.js';
import { CurrentBuckets, type CurrentUpdate } from './current-buckets.js';
import { copyAgg, ownChunks } from './entries.js';
import type { TailUpdate } from './batch.js';
import { RESOLUTIONS, bucketStart, type Agg } from '../rollups.js';
import type { StoredValue } from '../store.js';

/**
 * Bounds the newest-chunk caches (datapoints; each holds at most LIVE_MAX readings and
 * 4 × (ROLLUP_LIVE_MAX + 1) buckets) on a 1 GB device. Beyond it the caches start over: appends then
 * start new chunks without reading, and the current buckets are read once again. A store with
 * more datapoints that write all the time (a central's) reads a chunk back for nearly every
 * append above it: LevelStoreOptions.tailCacheDatapoints raises it where memory allows.
 */
export const TAIL_CACHE_DATAPOINTS = 20_000;

/**
 * What the store keeps in memory per datapoint (storage/DESIGN.md "Chunks", "Current buckets"):
 * the newest reading (durable and prepared), the newest chunks so appends never read, the
 * exact current rollup buckets and which of them may be older on disk. The caches of newest
 * chunks may be ahead of the disk while commits are prepared: a failed commit drops them.
 */
export class Caches {
  /** Datapoints whose newest chunks are kept at most (TAIL_CACHE_DATAPOINTS by default). */
  constructor(private readonly tailCacheMax = TAIL_CACHE_DATAPOINTS) {}

  /** Newest reading per datapoint on disk. */
  readonly latestById = new Map<string, StoredValue>();
  /** Newest reading per datapoint of commits prepared but not yet on disk (latestById: on disk). */
  readonly pendingLatest = new Map<string, StoredValue>();
  /** Newest raw chunk per datapoint, so appending never reads. */
  readonly rawTail = new Map<string, ReadonlyArray<Chunk<StoredValue>>>();
  /** Newest rollup chunk per datapoint and resolution (index into RESOLUTIONS), so updating the current buckets never reads. */
  readonly rollupTail = new Map<string, Array<ReadonlyArray<Chunk<Agg>> | undefined>>();
  /**
   * Per datapoint without raw points (all expired) but with rollups, at open: the newest
   * bucket start on disk. Raw points' newest time (latestById) bounds the rollups otherwise.
   */
  readonly rollupFloor = new Map<string, number>();
  /** Current rollup buckets whose disk state may be older than the durable one (storage/level/current-buckets.ts). */
  readonly current = new CurrentBuckets();
  /** The running commit's effects on `current`, applied once it is durable; undefined between commits. */
  commitCurrent: CurrentUpdate[] | undefined;
  /**
   * Per datapoint and resolution, what prepared commits (applied once their preparation
   * succeeded) say about a bucket whose disk state may be older: its start, `null` when a
   * prepared commit wrote it exact, undefined when they say nothing (then `current`, the
   * durable side, tells). A failed write voids it all.
   */
  readonly unwritten = new Map<string, Array<number | null | undefined>>();
  /** The running commit's marks for `unwritten`, applied once its preparation succeeded. */
  commitMarks: Array<[string, number, number | null]> = [];

  /**
   * The newest bucket of resolution `ms` that can be on disk for `id`: every stored bucket
   * is at or before it, so a later one is an append that needs no read.
   */
  newestBucket(id: string, ms: number): number {
    const t = this.newestTime(id);
    return t === -Infinity ? -Infinity : bucketStart(t, ms);
  }

  /** The newest raw point's time of `id` as commits are prepared: on disk, or in a commit being written (-Infinity: none). */
  newestRawTime(id: string): number {
    return Math.max(this.latestById.get(id)?.t ?? -Infinity, this.pendingLatest.get(id)?.t ?? -Infinity);
  }

  /** The newest time stored for `id`: its newest raw point, or, with none, its newest rollup bucket (-Infinity: nothing). */
  newestTime(id: string, newestRaw = this.newestRawTime(id)): number {
    return Math.max(newestRaw, this.rollupFloor.get(id) ?? -Infinity);
  }

  /** The bucket of (id, r) whose disk state may be older than the exact one, if any. */
  staleBucket(id: string, r: number): number | undefined {
    const prepared = this.unwritten.get(id)?.[r];
    if (prepared !== undefined) return prepared ?? undefined;
    return this.current.get(id, r)?.bucket;
  }

  hasStale(id: string): boolean {
    for (let r = 0; r < RESOLUTIONS.length; r++) if (this.staleBucket(id, r) !== undefined) return true;
    return false;
  }

  /** This commit leaves bucket `bucket` of (id, r) unwritten; `exact` is its state. */
  leftStale(id: string, r: number, bucket: number, exact: Agg): void {
    this.commitCurrent!.push({ id, r, current: { bucket, agg: copyAgg(exact) } });
    this.commitMarks.push([id, r, bucket]);
  }

  /** This commit writes bucket `bucket` of (id, r), which may be stale on disk, exact. */
  writtenExact(id: string, r: number, bucket: number): void {
    this.commitCurrent!.push({ id, r, current: null, bucket });
    this.commitMarks.push([id, r, null]);
  }

  /** The state the next commit is prepared from: this commit's marks, its preparation done. */
  applyMarks(): void {
    for (const [id, r, mark] of this.commitMarks) {
      let entry = this.unwritten.get(id);
      if (!entry) this.unwritten.set(id, (entry = new Array(RESOLUTIONS.length)));
      entry[r] = mark;
    }
    this.commitMarks = [];
  }

  /** Keeps the newest chunks a prepared commit leaves (its tail updates), starting over beyond `tailCacheMax` datapoints. */
  keepTails(tails: readonly TailUpdate[]): void {
    if (this.rawTail.size > this.tailCacheMax || this.rollupTail.size > this.tailCacheMax) this.dropTails();
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
  }

  /** A cached newest chunk of `id` may be one just deleted or rewritten outside a commit. */
  forgetTails(id: string): void {
    this.rawTail.delete(id);
    this.rollupTail.delete(id);
  }

  /**
   * Forgets cached newest chunks (all datapoints) after deletes outside the write path
   * (retention, restore) or a failed commit, so the next write into them reads the disk.
   */
  dropTails(): void {
    this.rawTail.clear();
    this.rollupTail.clear();
  }

  /** Everything kept of `id` (its deletion; under the commit lock: nothing prepared is ahead of the disk). */
  forget(id: string): void {
    this.latestById.delete(id);
    this.pendingLatest.delete(id);
    this.rollupFloor.delete(id);
    this.current.forget(id);
    this.unwritten.delete(id);
    this.forgetTails(id);
  }
}
