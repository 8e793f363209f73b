import { HIGH, metaKey, pointPrefix, pointTime, rollupPrefix } from './keys.js';
import { rawCodec, rollupCodec } from './chunks.js';
import { RESOLUTIONS, decodeAgg } from '../rollups.js';
import type { DatapointDeletion, StoredPoints } from '../store.js';

/** Keys deleted per slice: each slice holds the commit lock, so ingest waits at most one slice. */
export const ERASE_SLICE = 2_000;

/** A key whose (harmless) delete is written with fsync at the end: LevelDB's log is in order, so it makes the unsynced slices before it durable. */
const ERASE_MARK = 'x!erase';

type Value = Buffer | string;
type Op = { type: 'del'; key: string };

/** The part of a LevelDB a deletion reads. */
export interface EraseDb {
  get(key: string, options: { valueEncoding: 'utf8' }): Promise<Value | undefined>;
  iterator(options: { gte: string; lt: string; limit?: number }): AsyncIterable<[string, Value]>;
}

/** What the store lends a deletion (LevelStore.deleteDatapoint). */
export interface EraseAccess {
  db: EraseDb;
  /** Runs `fn` while no commit is prepared or written (the store's commit lock). */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /** Writes deletes as the store writes (read-only alarm on failure). */
  write(ops: Op[], sync: boolean): Promise<void>;
  /** Drops whatever the store keeps in memory about the datapoint (latest value, cached chunks, current buckets). */
  forget(): void;
}

const rollups = rollupCodec(decodeAgg);

/** The key ranges of a datapoint: raw chunks, then the rollup chunks of every resolution. */
function ranges(id: string): Array<{ prefix: string; raw: boolean }> {
  return [{ prefix: pointPrefix(id), raw: true }, ...RESOLUTIONS.map((r) => ({ prefix: rollupPrefix(r.name, id), raw: false }))];
}

/**
 * Deletes a datapoint's definition (`m!<id>`), raw chunks (`p!<id>!…`) and rollup chunks
 * (`r!<res>!<id>!…`), never its outbox records. Memory stays bounded whatever the series:
 * each range goes in slices of `slice` keys, each slice one batch under the commit lock, the
 * entries counted from the chunk headers. The definition goes first, so a deletion cut short
 * (a crash) leaves data without a definition, which the deletion finds by its keys and
 * finishes when asked again. Readings written while it runs (a write accepted just before
 * the datapoint was taken out of the registry) are swept up by a last pass under the lock, so
 * nothing of the series and nothing of its cached state is left behind.
 */
export async function eraseDatapoint(a: EraseAccess, id: string, slice = ERASE_SLICE): Promise<DatapointDeletion> {
  const out: DatapointDeletion = { points: 0, rollups: 0, definition: false };
  out.definition = await a.exclusive(async () => {
    const had = (await a.db.get(metaKey(id), { valueEncoding: 'utf8' })) !== undefined;
    if (had) await a.write([{ type: 'del', key: metaKey(id) }], true);
    a.forget();
    return had;
  });
  /** Deletes up to `limit` keys of one range; returns how many keys it found. */
  const sweep = async (range: { prefix: string; raw: boolean }, limit: number): Promise<number> => {
    const ops: Op[] = [];
    let n = 0;
    for await (const [key, value] of a.db.iterator({ gte: range.prefix, lt: range.prefix + HIGH, limit })) {
      ops.push({ type: 'del', key });
      n += range.raw ? rawCodec.count(value) : rollups.count(value);
    }
    if (ops.length > 0) await a.write(ops, false);
    if (range.raw) out.points += n;
    else out.rollups += n;
    return ops.length;
  };
  for (const range of ranges(id)) {
    for (let more = true; more; ) {
      more = await a.exclusive(async () => {
        const found = await sweep(range, slice);
        a.forget();
        return found === slice;
      });
    }
  }
  await a.exclusive(async () => {
    // Under the lock nothing new is written: this ends.
    for (const range of ranges(id)) while ((await sweep(range, slice)) > 0);
    await a.write([{ type: 'del', key: ERASE_MARK }], true);
    a.forget();
  });
  return out;
}

/** How many raw readings and rollup buckets of `id` are stored, and the readings' span, from chunk headers in one pass (memory: one chunk at a time). */
export async function storedPointsIn(db: EraseDb, id: string): Promise<StoredPoints> {
  const out: StoredPoints = { points: 0, rollups: 0 };
  let last: [string, Value] | undefined;
  for (const range of ranges(id)) {
    for await (const entry of db.iterator({ gte: range.prefix, lt: range.prefix + HIGH })) {
      if (!range.raw) {
        out.rollups += rollups.count(entry[1]);
        continue;
      }
      out.points += rawCodec.count(entry[1]);
      out.oldest ??= pointTime(entry[0]);
      last = entry;
    }
  }
  if (last) {
    const { ts } = rawCodec.decode(pointTime(last[0]), last[1]);
    out.newest = ts[ts.length - 1];
  }
  return out;
}
