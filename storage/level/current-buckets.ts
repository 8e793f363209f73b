import { RESOLUTIONS, aggregatePoints, bucketStart, mergeOrdered, type Agg } from '../rollups.js';

/**
 * The newest rollup bucket of a datapoint at one resolution, exact as of what is durable.
 *
 * Live commits (readings newer than anything stored, the usual case) do not rewrite the
 * current bucket of each resolution on disk: that was four of a datapoint's five puts per
 * commit, about 60 % of a live commit's cost (LevelDB's memtable, log and compaction work per
 * put, and the encoding). On disk the current bucket may then hold an older state of itself;
 * the exact one is kept here and laid over it wherever a rollup chunk is read (queries, and
 * commits that read chunks). A bucket reaches disk exact when it is closed (a reading in a
 * later bucket), when any other commit writes it, before retention deletes the raw points it
 * could be recomputed from, and it is recomputed from those raw points when the store opens.
 */
export interface CurrentBucket {
  bucket: number;
  agg: Agg;
}

/**
 * A commit's effect on the current buckets, applied once it is durable: an exact state, or
 * `null` with the bucket the commit wrote exact to disk (forgotten only if still the one kept).
 */
export type CurrentUpdate = { id: string; r: number; current: CurrentBucket } | { id: string; r: number; current: null; bucket: number };

export class CurrentBuckets {
  private readonly byId = new Map<string, Array<CurrentBucket | undefined>>();

  get(id: string, r: number): CurrentBucket | undefined {
    return this.byId.get(id)?.[r];
  }

  /** Ids with a current bucket whose disk state may be older. */
  ids(): IterableIterator<string> {
    return this.byId.keys();
  }

  set(id: string, r: number, current: CurrentBucket | null): void {
    let entry = this.byId.get(id);
    if (!current) {
      if (!entry?.[r]) return;
      entry[r] = undefined;
      if (entry.every((e) => e === undefined)) this.byId.delete(id);
      return;
    }
    if (!entry) this.byId.set(id, (entry = new Array(RESOLUTIONS.length)));
    entry[r] = current;
  }

  /** A durable commit's updates, in its order. */
  apply(updates: readonly CurrentUpdate[]): void {
    for (const u of updates) {
      if (u.current) this.set(u.id, u.r, u.current);
      else if (this.get(u.id, u.r)?.bucket === u.bucket) this.set(u.id, u.r, null);
    }
  }

  forget(id: string): void {
    this.byId.delete(id);
  }

  clear(): void {
    this.byId.clear();
  }

  /**
   * Replaces, in a chunk read from disk (times `ts`, entries `es`), the entry of the current
   * bucket of `id` at resolution `r` with its exact state (a copy: chunks read may be cached
   * and updated in place).
   */
  overlay(id: string, r: number, ts: readonly number[], es: Agg[]): void {
    const current = this.get(id, r);
    if (!current) return;
    for (let i = ts.length - 1; i >= 0; i--) {
      if (ts[i] === current.bucket) {
        es[i] = { ...current.agg };
        return;
      }
      if (ts[i]! < current.bucket) return;
    }
  }
}

/** How `recomputeCurrent` reads the disk as it is (no overlay). */
export interface CurrentReads {
  /** The numeric readings of `id` in [from, to], by time. */
  numericReadings(id: string, from: number, to: number): Promise<Array<{ t: number; v: number }>>;
  /** The buckets of resolution `r` of `id` in [from, to] as stored. */
  buckets(id: string, r: number, from: number, to: number): Promise<Map<number, Agg>>;
}

/**
 * The exact current bucket of every resolution of `id`, whose newest reading is at `newest`:
 * 1 min from the raw points, each coarser one from the finer buckets on disk with the finer
 * current bucket replaced by its recomputed state (so each step reads at most 60 entries).
 */
export async function recomputeCurrent(id: string, newest: number, reads: CurrentReads): Promise<Array<CurrentBucket | undefined>> {
  const out = new Array<CurrentBucket | undefined>(RESOLUTIONS.length);
  const minute = bucketStart(newest, RESOLUTIONS[0].ms);
  const first = aggregatePoints(await reads.numericReadings(id, minute, minute + RESOLUTIONS[0].ms - 1));
  out[0] = first ? { bucket: minute, agg: first } : undefined;
  for (let r = 1; r < RESOLUTIONS.length; r++) {
    const ms = RESOLUTIONS[r]!.ms;
    const bucket = bucketStart(newest, ms);
    const finer = await reads.buckets(id, r - 1, bucket, bucket + ms - 1);
    const finerCurrent = bucketStart(newest, RESOLUTIONS[r - 1]!.ms);
    const exact = out[r - 1];
    if (exact) finer.set(finerCurrent, exact.agg);
    else finer.delete(finerCurrent);
    let acc: Agg | undefined;
    for (const b of [...finer.keys()].sort((x, y) => x - y)) acc = mergeOrdered(acc, finer.get(b)!);
    out[r] = acc ? { bucket, agg: acc } : undefined;
  }
  return out;
}
