import type { Level } from 'level';

/**
 * A stored value: bytes (chunks: their layouts are binary) or text (everything else: the
 * outbox, marks, definitions, broker state), which LevelDB holds as its UTF-8. The database
 * reads bytes by default; reads of text say so (TEXT).
 */
export type DbValue = Buffer | string;

/** The database of a LevelStore: keys are text, values bytes or text (see DbValue). */
export type StoreDb = Level<string, DbValue>;

/** Read options of values stored as text. */
export const TEXT = { valueEncoding: 'utf8' } as const;

/** A value read with TEXT (typed as either). */
export function text(value: DbValue): string {
  return typeof value === 'string' ? value : value.toString('utf8');
}

/** The LevelDB snapshot handle (abstract-level 3). */
export type Snapshot = ReturnType<StoreDb['snapshot']>;

export type BatchOp = { type: 'put'; key: string; value: DbValue } | { type: 'del'; key: string };

/** A write of the store's own outside a commit (refused while read-only; a failure raises the alarm). */
export type WriteOps = (ops: BatchOp[], sync: boolean) => Promise<void>;

/** Where a commit's chunk writes go: the LevelDB chained batch, or an OpList for work done concurrently. */
export interface Sink {
  put(key: string, value: DbValue): unknown;
  del(key: string): unknown;
}

/** Operations recorded while several series are written concurrently, replayed into the batch in order. */
export class OpList implements Sink {
  private readonly ops: BatchOp[] = [];
  put(key: string, value: DbValue): void {
    this.ops.push({ type: 'put', key, value });
  }
  del(key: string): void {
    this.ops.push({ type: 'del', key });
  }
  replay(sink: Sink): void {
    for (const op of this.ops) {
      if (op.type === 'put') sink.put(op.key, op.value);
      else sink.del(op.key);
    }
  }
}

/**
 * Range reads in flight at once when a batch reads chunks (late values, re-imports, recomputed
 * rollups). More than libuv's four threads only queue, and contend: with 32 in flight, closing
 * an iterator took the main thread ~30 µs instead of ~4 µs, advancing it ~2× as long, and a
 * re-import ran slower than with 4-8 (storage/DESIGN.md "Overwrites").
 */
export const READ_PARALLEL = 8;

/** Maps items through `fn` with at most `limit` in flight; results in input order. */
export async function inParallel<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Index of `t` in ascending `ts`, or -1. */
export function indexOfTime(ts: readonly number[], t: number): number {
  let lo = 0;
  let hi = ts.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const x = ts[mid]!;
    if (x === t) return mid;
    if (x < t) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Largest time a key can hold (15 digits). */
export const MAX_TIME = 999_999_999_999_999;
