import type { Chunk } from './chunks.js';
import type { Agg, RollupEntry } from '../rollups.js';
import type { StoredValue } from '../store.js';

/*
 * A group commit's points as the write paths handle them: per datapoint (a Series), sorted by
 * time, with the rollup buckets they touch (Runs) and the buckets they change (Changes).
 */

/** A batch's points of one datapoint, sorted by time, and their runs per resolution. */
export interface Series {
  id: string;
  ts: number[];
  vals: StoredValue[];
  /** Points stored as they are already (1 at their index), found when the raw chunks were read. */
  unchanged?: Uint8Array;
  runs: Run[][];
  /** Rollup buckets this batch changes, per resolution (null entry: delete the bucket). */
  changes: Array<Changes | undefined>;
}

export interface Changes {
  ts: number[];
  es: Array<RollupEntry | null>;
  /** False once a recomputed bucket was added out of order. */
  sorted: boolean;
}

export function addChange(series: Series, r: number, bucket: number, agg: RollupEntry | null): void {
  let c = series.changes[r];
  if (!c) series.changes[r] = c = { ts: [], es: [], sorted: true };
  else if (bucket <= c.ts[c.ts.length - 1]!) c.sorted = false;
  c.ts.push(bucket);
  c.es.push(agg);
}

export function sortChanges(c: Changes): void {
  const order = c.ts.map((_, i) => i).sort((x, y) => c.ts[x]! - c.ts[y]!);
  c.ts = order.map((i) => c.ts[i]!);
  c.es = order.map((i) => c.es[i]!);
  c.sorted = true;
}

/** The points of a series inside one bucket of resolution `r`: entries [from, to). */
export interface Run {
  series: Series;
  r: number;
  from: number;
  to: number;
  bucket: number;
  /** The bucket's entry: before the batch (the same object as `before`), then after it. */
  agg: RollupEntry | null;
  /** The bucket's aggregate before the batch (never mutated). */
  before: RollupEntry | null;
  /** No reading of the batch: the current bucket closed by it, written as it is (rollupUpdates). */
  carry: boolean;
  /** The batch changes the bucket (its new entry is `agg`, null: now empty). */
  changed: boolean;
}

/** A series' newest chunks after a commit (raw when `r` is undefined); undefined: not known. */
export interface TailUpdate {
  id: string;
  r?: number;
  chunks: ReadonlyArray<Chunk<StoredValue>> | ReadonlyArray<Chunk<Agg>> | undefined;
}

/** A batch's points of one datapoint as they arrive. */
export interface Building {
  /** The datapoint's index in the commit's outbox value (-1: none yet). */
  outboxId: number;
  ts: number[];
  vals: StoredValue[];
  /** Strictly ascending so far (the usual case: nothing to sort or deduplicate). */
  ascending: boolean;
}

/** The batch's points per datapoint, sorted by time; of two points with the same time the later one wins. */
export function seriesOf(byId: Map<string, Building>): Series[] {
  const out: Series[] = [];
  for (const [id, b] of byId) {
    let { ts, vals } = b;
    if (!b.ascending) {
      const last = new Map<number, StoredValue>();
      for (let i = 0; i < ts.length; i++) last.set(ts[i]!, vals[i]!);
      const entries = [...last].sort((x, y) => x[0] - y[0]);
      ts = entries.map((e) => e[0]);
      vals = entries.map((e) => e[1]);
    }
    out.push({ id, ts, vals, runs: [], changes: [] });
  }
  return out;
}

/** The series without its unchanged points (undefined: none is left), for the rollups. */
export function changedOnly(s: Series): Series | undefined {
  const flags = s.unchanged;
  if (!flags) return s;
  const ts: number[] = [];
  const vals: StoredValue[] = [];
  for (let i = 0; i < s.ts.length; i++) {
    if (flags[i]) continue;
    ts.push(s.ts[i]!);
    vals.push(s.vals[i]!);
  }
  return ts.length === 0 ? undefined : { id: s.id, ts, vals, runs: [], changes: [] };
}

/**
 * Readings of the series that read from disk handled together within a commit (whole series:
 * one longer than this is a slice alone). What a slice reads and computes (chunks decoded,
 * buckets before and after: a few KB a reading) is dropped before the next slice. Smaller
 * slices also cost V8 less garbage collection under the Pi heap flags (1 MB semi-spaces):
 * a re-import with every value changed took ~25 % less main-thread CPU at 2,048 than at 8,192.
 */
export const READ_SLICE_POINTS = 2_048;

/** Consecutive groups of whole series, each of at most `max` readings (a longer series alone). */
export function* slices(series: readonly Series[], max: number): Generator<Series[]> {
  let group: Series[] = [];
  let n = 0;
  for (const s of series) {
    if (group.length > 0 && n + s.ts.length > max) {
      yield group;
      group = [];
      n = 0;
    }
    group.push(s);
    n += s.ts.length;
  }
  if (group.length > 0) yield group;
}
