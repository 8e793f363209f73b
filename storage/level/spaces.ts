import type { ChunkCodec, Chunk, CutMode } from './chunks.js';
import { RESOLUTIONS, bucketStart } from '../rollups.js';
import type { StoredValue } from '../store.js';

/**
 * One chunked series on disk: how its keys are made, its block length, its value codec and
 * how its newest chunks are cut: raw points extend a small newest chunk (`tail`); rollups
 * keep the newest bucket, which every commit of live data updates, alone (`head`).
 */
export interface Space<E, W = E> {
  /** The series' key prefix, naming it. */
  name: string;
  keyOf(t: number): string;
  blockMs: number;
  codec: ChunkCodec<E, W>;
  mode: CutMode;
  /** The newest chunk takes appended entries while it holds fewer than this. */
  liveMax: number;
  /** Lays the exact current bucket over a rollup chunk read from disk (storage/level/current-buckets.ts). */
  overlay?(ts: readonly number[], es: E[]): void;
}

/** Returned by the in-memory write path when it would need to read chunks from disk. */
export const NEEDS_READ = Symbol('needs read');
export const NONE: readonly never[] = [];

/** Entries without deletions (appends have nothing to delete). */
export function withoutDeletes<E>(ts: number[], es: Array<E | null>): { ts: number[]; es: E[] } {
  if (!es.includes(null)) return { ts, es: es as E[] };
  const keep = es.map((e) => e !== null);
  return { ts: ts.filter((_, i) => keep[i]), es: es.filter((e): e is E => e !== null) };
}

/** [from, to) index ranges of ts[0..end) (ascending) split where two times lie more than `gap` apart. */
export function clusterRanges(ts: readonly number[], end: number, gap: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let start = 0;
  for (let i = 1; i < end; i++) {
    if (ts[i]! - ts[i - 1]! > gap) {
      out.push([start, i]);
      start = i;
    }
  }
  if (end > 0) out.push([start, end]);
  return out;
}

/**
 * Batch entries equal to what is stored (a file imported again): `flags[i]` set for each,
 * `count` of them. They change neither their chunk nor any rollup bucket.
 */
export interface Unchanged<E> {
  flags: Uint8Array;
  count: number;
  equal(a: E, b: E): boolean;
}

/** Marks entries [from, to) of the batch (ts/es ascending) equal to the entry at the same time in `chunks` (ascending); returns how many. */
export function markUnchanged<E>(
  chunks: ReadonlyArray<Chunk<E>>,
  ts: readonly number[],
  es: ReadonlyArray<E | null>,
  from: number,
  to: number,
  same: Unchanged<E>,
): number {
  let n = 0;
  let j = from;
  for (const c of chunks) {
    for (let i = 0; i < c.ts.length && j < to; i++) {
      const t = c.ts[i]!;
      while (j < to && ts[j]! < t) j++;
      if (j < to && ts[j] === t) {
        const e = es[j];
        if (e !== null && e !== undefined && same.equal(e, c.es[i]!)) {
          if (!same.flags[j]) same.count++;
          same.flags[j] = 1;
          n++;
        }
        j++;
      }
    }
  }
  return n;
}

/**
 * Which raw chunks a read keeps (readChunks): a chunk whose span up to the next chunk on disk,
 * [start, end), meets no minute holding a reading of the batch is left out. A batch of sparse
 * readings (one an hour, say) over densely stored ones (1 s) then holds and rewrites the
 * chunks its readings land in, not every chunk of the range it spans.
 */
export type Keep = (start: number, end: number) => boolean;

/** Keep for the raw chunks of a series whose batch readings are at `ts` (ascending): those meeting a minute that holds one (what recomputing the 1 min buckets reads). */
export function keepMinutesOf(ts: readonly number[]): Keep {
  const ms = RESOLUTIONS[0].ms;
  return (start, end) => {
    // The first reading at or after the minute holding `start`: is it in a minute that begins before `end`?
    const lo = bucketStart(start, ms);
    let a = 0;
    let b = ts.length;
    while (a < b) {
      const mid = (a + b) >> 1;
      if (ts[mid]! < lo) a = mid + 1;
      else b = mid;
    }
    return a < ts.length && bucketStart(ts[a]!, ms) < end;
  };
}

/** A reading equal to a stored one: the same value (numbers bit for bit but NaN, which is stored as null) and quality; JSON values are taken as changed. */
export function sameReading(a: StoredValue, b: StoredValue): boolean {
  if ((a.q ?? undefined) !== (b.q ?? undefined)) return false;
  const v = a.v;
  if (typeof v === 'number') return typeof b.v === 'number' && Object.is(v, b.v) && !Number.isNaN(v);
  return (v === null || typeof v !== 'object') && v === b.v;
}
