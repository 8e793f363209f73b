import {
  RAW_BLOCK_MS,
  LIVE_MAX,
  ROLLUP_LIVE_MAX,
  blockStart,
  cut,
  mergeEntries,
  rawCodec,
  rollupBlockMs,
  rollupCodec,
  type Chunk,
  type CutMode,
} from './chunks.js';
import { pointKey, pointTime, rollupKey } from './keys.js';
import type { CurrentBuckets } from './current-buckets.js';
import type { Sink, Snapshot, StoreDb } from './db.js';
import { NEEDS_READ, NONE, clusterRanges, keepMinutesOf, markUnchanged, withoutDeletes, type Keep, type Space, type Unchanged } from './spaces.js';
import { RESOLUTIONS, bucketStart, decodeAgg, type Agg, type RollupEntry } from '../rollups.js';
import type { StoredValue } from '../store.js';

/**
 * The chunked series on disk (storage/DESIGN.md "Chunks"): raw points and rollup buckets of
 * one datapoint, many to a key. Reads chunks (with the exact current buckets laid over rollup
 * chunks) and turns a batch's entries into the puts and deletes that merge them in. Knows
 * nothing of commits but the two things a commit tells it: the chunk ranges it read already
 * (`commitReads`) and the write still in flight before it (`diskBehind`).
 */
export class ChunkedSeries {
  private readonly aggCodec = rollupCodec(decodeAgg);
  /** The rollup codec of the general write path: one-reading buckets decode to readings. */
  private readonly entryCodec = rollupCodec(decodeAgg, true);
  /** Chunk ranges read from disk during the running commit (see chunksBeforeBatch); undefined between commits. */
  commitReads: Map<string, Array<{ from: number; to: number; chunks: Array<Chunk<unknown>> }>> | undefined;
  /** While a commit is prepared: the write before it, still in flight (its reads from disk wait for it). */
  diskBehind: Promise<void> | undefined;

  constructor(
    private readonly level: StoreDb,
    private readonly current: CurrentBuckets,
  ) {}

  rawSpace(id: string): Space<StoredValue> {
    return { name: `p!${id}`, keyOf: (t) => pointKey(id, t), blockMs: RAW_BLOCK_MS, codec: rawCodec, mode: 'tail', liveMax: LIVE_MAX };
  }

  rollupSpace(r: number, id: string): Space<Agg> {
    return this.rollupSeries(r, id);
  }

  /** The same series as rollupSpace, for the append path: its entries may be single readings. */
  rollupAppendSpace(r: number, id: string): Space<RollupEntry> {
    return this.rollupSeries(r, id);
  }

  /** The same series as the general write path reads and writes it: one-reading buckets as readings (see ownAgg). */
  rollupWriteSpace(r: number, id: string): Space<RollupEntry> {
    const res = RESOLUTIONS[r]!;
    return {
      name: `r!${res.name}!${id}`,
      keyOf: (t) => rollupKey(res.name, id, t),
      blockMs: rollupBlockMs(res.ms),
      codec: this.entryCodec,
      mode: 'head',
      liveMax: ROLLUP_LIVE_MAX,
      // The exact current bucket is an aggregate (a copy: see CurrentBuckets.overlay).
      overlay: (ts, es) => this.current.overlay(id, r, ts, es as Agg[]),
    };
  }

  private rollupSeries(r: number, id: string): Space<Agg, RollupEntry> {
    const res = RESOLUTIONS[r]!;
    return {
      name: `r!${res.name}!${id}`,
      keyOf: (t) => rollupKey(res.name, id, t),
      blockMs: rollupBlockMs(res.ms),
      codec: this.aggCodec,
      mode: 'head',
      liveMax: ROLLUP_LIVE_MAX,
      overlay: (ts, es) => this.current.overlay(id, r, ts, es),
    };
  }

  /**
   * Writes changes (times ascending; a null entry deletes) into one chunked series whose
   * newest stored time before this batch is `newest`; `tail` holds its newest chunks when
   * cached. Without a read: appends (extending a small newest chunk, or new chunks) and
   * entries that all lie inside the cached newest chunks. Otherwise returns NEEDS_READ and
   * writes nothing; `writeSeries` does it then. Returns the series' newest chunks afterwards
   * (undefined: not known).
   */
  writeSeriesInMemory<E>(
    space: Space<E>,
    tail: ReadonlyArray<Chunk<E>> | undefined,
    newest: number,
    ts: number[],
    es: Array<E | null>,
    sink: Sink,
  ): ReadonlyArray<Chunk<E>> | undefined | typeof NEEDS_READ {
    if (ts[0]! <= newest) {
      if (!tail || ts[0]! < tail[0]!.ts[0]!) return NEEDS_READ;
      const head = tail[tail.length - 1]!;
      if (space.mode === 'head' && ts.length === 1 && head.ts.length === 1 && head.ts[0] === ts[0] && es[0] !== null) {
        // The common case of live data: the current bucket, alone in its chunk, updated.
        const chunk: Chunk<E> = { key: head.key, ts: [ts[0]!], es: [es[0]!] };
        sink.put(chunk.key, space.codec.encode(chunk.ts, chunk.es));
        return tail.length > 1 ? [tail[0]!, chunk] : [chunk];
      }
      // The chunk before the current bucket would hold its entries, the current one unless this batch replaces it, and all new but the newest.
      if (
        space.mode === 'head' &&
        tail.length > 1 &&
        ts[0]! >= head.ts[0]! &&
        tail[0]!.ts.length + ts.length - (ts[0] === head.ts[0] ? 1 : 0) > space.liveMax
      ) {
        // The current bucket and newer ones, more than the chunk before it may take (bulk): leave that chunk as it is.
        const m = mergeEntries([head], ts, es);
        return this.rewrite(space, [head], m.ts, m.es, space.mode, sink);
      }
      // Everything from the cached newest chunks' start on: no other chunk can overlap.
      const m = mergeEntries(tail, ts, es);
      return this.rewrite(space, tail, m.ts, m.es, space.mode, sink);
    }
    return this.append(space, tail, ts, es, sink);
  }

  /** Entries all newer than anything stored: they extend the newest chunks or start new ones. */
  private append<E>(
    space: Space<E>,
    tail: ReadonlyArray<Chunk<E>> | undefined,
    ts: number[],
    es: Array<E | null>,
    sink: Sink,
  ): ReadonlyArray<Chunk<E>> | undefined {
    let involved: ReadonlyArray<Chunk<E>> = NONE;
    const last = tail?.[tail.length - 1];
    const block = blockStart(ts[0]!, space.blockMs);
    if (last && space.mode === 'head') {
      // The head (newest bucket, alone in its chunk) joins the small chunk before it, unless
      // this batch brings more buckets than that chunk may hold (a bulk import): rewriting
      // it with every batch wrote each bucket many times over.
      const body = tail!.length > 1 ? tail![tail!.length - 2] : undefined;
      involved = body && body.ts.length + ts.length <= space.liveMax && blockStart(body.ts[0]!, space.blockMs) === block ? [body, last] : [last];
    } else if (last && last.ts.length < space.liveMax && blockStart(last.ts[0]!, space.blockMs) === block) involved = [last];
    const m = involved.length === 0 ? withoutDeletes(ts, es) : mergeEntries(involved, ts, es);
    if (m.ts.length === 0) return tail;
    const written = this.rewrite(space, involved, m.ts, m.es, space.mode, sink);
    // Chunks of the old tail that were not rewritten still come before the new ones.
    return written;
  }

  /** The read path of writeSeriesInMemory: late entries before the cached newest chunks (or none cached). */
  async writeSeries<E>(
    space: Space<E>,
    tail: ReadonlyArray<Chunk<E>> | undefined,
    newest: number,
    ts: number[],
    es: Array<E | null>,
    sink: Sink,
    same?: Unchanged<E>,
  ): Promise<ReadonlyArray<Chunk<E>> | undefined> {
    let a = 0;
    while (a < ts.length && ts[a]! <= newest) a++;
    let current = tail;
    for (const [from, to] of clusterRanges(ts, a, space.blockMs)) {
      if (current && ts[from]! >= current[0]!.ts[0]!) {
        // From here on everything lies in (or after) the cached newest chunks: no other chunk can overlap.
        if (same && markUnchanged(current, ts, es, from, ts.length, same) === ts.length - from) return current;
        const m = mergeEntries(current, from === 0 ? ts : ts.slice(from), from === 0 ? es : es.slice(from));
        return this.rewrite(space, current, m.ts, m.es, space.mode, sink);
      }
      const involved: Array<Chunk<E>> = [];
      // Raw reads cover whole minutes: recomputing the 1 min buckets then needs no second read.
      // Raw chunks that none of the batch's readings land in are left out (keepMinutesOf).
      const raw = space.mode === 'tail';
      const lo = raw ? bucketStart(ts[from]!, RESOLUTIONS[0].ms) : ts[from]!;
      const hi = raw ? bucketStart(ts[to - 1]!, RESOLUTIONS[0].ms) + RESOLUTIONS[0].ms - 1 : ts[to - 1]!;
      for (const c of await this.chunksBeforeBatch(space, lo, hi, raw ? keepMinutesOf(ts) : undefined))
        if (c.ts[c.ts.length - 1]! >= ts[from]! && c.ts[0]! <= ts[to - 1]!) involved.push(c);
      // Rewritten in groups of chunks next to each other on disk: one left out between two
      // (no reading of the batch in it) must stay between them. A group takes the batch's
      // entries before the chunk after it (none land in one left out).
      for (let g = 0, p = from; g < involved.length || p < to; ) {
        let end = g + 1;
        while (end < involved.length && (involved[end - 1]!.next === undefined || involved[end - 1]!.next === involved[end]!.ts[0])) end++;
        const group = g < involved.length ? involved.slice(g, end) : [];
        const limit = end < involved.length ? involved[end - 1]!.next! : Infinity;
        let q = p;
        while (q < to && ts[q]! < limit) q++;
        g = end;
        const [pf, pt] = [p, q];
        p = q;
        // No entry of the batch, or every one as stored already (the same file imported again): nothing to rewrite.
        if (pf === pt || (same && markUnchanged(group, ts, es, pf, pt, same) === pt - pf)) continue;
        const m = mergeEntries(group, ts.slice(pf, pt), es.slice(pf, pt));
        // When these chunks reach the series' newest entry they are its tail: cut them as such
        // (and cache them), so live updates after a restart stop reading.
        const isTail = m.ts.length > 0 && m.ts[m.ts.length - 1]! >= newest;
        const written = this.rewrite(
          space,
          group,
          m.ts,
          m.es,
          isTail ? space.mode : 'none',
          sink,
          group.map((c) => c.ts[0]!),
        );
        if (isTail) current = written;
        else if (current && group.some((c) => current!.some((k) => k.key === c.key))) current = undefined;
      }
    }
    if (a === ts.length) return current;
    return this.append(space, current, a === 0 ? ts : ts.slice(a), a === 0 ? es : es.slice(a), sink);
  }

  /** Operations replacing the `involved` chunks by the entries `ts/es`, cut into chunks; returns the newest one or two (what a tail cache holds). */
  private rewrite<E>(
    space: Space<E>,
    involved: ReadonlyArray<Chunk<E>>,
    ts: number[],
    es: E[],
    mode: CutMode,
    sink: Sink,
    starts?: readonly number[],
  ): ReadonlyArray<Chunk<E>> | undefined {
    const pieces = cut(ts, es, space.blockMs, mode, space.liveMax, starts);
    const fresh: Array<Chunk<E>> = new Array(pieces.length);
    for (let i = 0; i < pieces.length; i++) fresh[i] = { key: space.keyOf(pieces[i]!.ts[0]!), ts: pieces[i]!.ts, es: pieces[i]!.es };
    for (const c of involved) {
      let kept = false;
      for (const f of fresh) if (f.key === c.key) kept = true;
      if (!kept) sink.del(c.key);
    }
    for (const c of fresh) sink.put(c.key, space.codec.encode(c.ts, c.es));
    if (fresh.length === 0) return undefined;
    return mode === 'head' && fresh.length > 1 ? fresh.slice(-2) : fresh.slice(-1);
  }

  /**
   * The chunks of a series holding entries in [from, to], ascending: the one holding
   * `from` (the last key at or below it, inside its block), then every key up to `to`.
   * The first may hold entries before `from`, the last entries after `to`. `descending`:
   * the same chunks, newest first.
   */
  async *chunks<E>(
    space: Space<E>,
    from: number,
    to: number,
    snapshot?: Snapshot,
    descending = false,
    batchSize = 256,
    asStored = false,
  ): AsyncGenerator<Chunk<E>> {
    from = Math.max(0, from);
    if (to < from) return;
    // The chunk holding `from` starts before it: first when ascending, last when descending.
    const head = descending ? undefined : await this.chunkBefore(space, from, snapshot, asStored);
    if (head) yield head;
    const it = this.level.iterator({ gte: space.keyOf(from), lte: space.keyOf(to), reverse: descending, ...(snapshot ? { snapshot } : {}) });
    try {
      for (let entries = await it.nextv(batchSize); entries.length > 0; entries = await it.nextv(batchSize)) {
        for (const [key, value] of entries) {
          const d = space.codec.decode(pointTime(key), value);
          if (!asStored) space.overlay?.(d.ts, d.es);
          yield { key, ts: d.ts, es: d.es };
        }
      }
    } finally {
      await it.close();
    }
    const tail = descending ? await this.chunkBefore(space, from, snapshot, asStored) : undefined;
    if (tail) yield tail;
  }

  /**
   * The chunks holding entries in [from, to] as they are on disk before the current batch,
   * read once per commit: the same ranges are needed to fill rollups' previous values, to
   * recompute buckets and to rewrite chunks (a re-imported file touches every one of them).
   */
  async chunksBeforeBatch<E>(space: Space<E>, from: number, to: number, keep?: Keep): Promise<Array<Chunk<E>>> {
    const reads = this.commitReads;
    const known = reads?.get(space.name)?.find((r) => r.from <= from && r.to >= to);
    if (known) return (known.chunks as Array<Chunk<E>>).filter((c) => c.ts[c.ts.length - 1]! >= from && c.ts[0]! <= to);
    // The commit before is still being written: the disk is behind the prepared state until
    // then. If that write fails, this commit is void anyway (its failure check after preparing).
    if (this.diskBehind) await this.diskBehind.catch(() => undefined);
    const chunks = await this.readChunks(space, from, to, keep);
    if (reads) {
      let list = reads.get(space.name);
      if (!list) reads.set(space.name, (list = []));
      list.push({ from, to, chunks });
    }
    return chunks;
  }

  /**
   * What `chunks` yields (with the overlay), read with one iterator instead of two: backwards
   * from `to` down to the chunk holding `from` (the last key at or below it, inside its block).
   * A re-import reads a few chunks per datapoint and resolution with every commit; creating
   * LevelDB iterators was a large part of its cost. Keys beyond the chunk holding `from` that
   * the iterator hands over in the same step are not decoded.
   */
  private async readChunks<E>(space: Space<E>, from: number, to: number, keep?: Keep): Promise<Array<Chunk<E>>> {
    from = Math.max(0, from);
    const out: Array<Chunk<E>> = [];
    if (to < from) return out;
    const fromKey = space.keyOf(from);
    const it = this.level.iterator({ gte: space.keyOf(blockStart(from, space.blockMs)), lte: space.keyOf(to), reverse: true });
    try {
      let size = 4;
      // The first time of the chunk after the current one (the one read just before it).
      let next: number | undefined;
      read: for (let entries = await it.nextv(size); entries.length > 0; entries = await it.nextv((size = Math.min(256, size * 4)))) {
        for (const [key, value] of entries) {
          const start = pointTime(key);
          const before = key < fromKey;
          // Nothing of the batch lands in it (up to the next chunk): left out, not decoded.
          if (keep && !keep(Math.max(start, from), next ?? to + 1)) {
            next = start;
            if (before) break read;
            continue;
          }
          const d = space.codec.decode(start, value);
          if (!before || d.ts[d.ts.length - 1]! >= from) {
            space.overlay?.(d.ts, d.es);
            out.push(next === undefined ? { key, ts: d.ts, es: d.es } : { key, ts: d.ts, es: d.es, next });
          }
          next = start;
          if (before) break read;
        }
      }
    } finally {
      await it.close();
    }
    return out.reverse();
  }

  /** The chunk that starts before `from` (inside its block) and holds entries at or after it, if any. */
  private async chunkBefore<E>(space: Space<E>, from: number, snapshot: Snapshot | undefined, asStored = false): Promise<Chunk<E> | undefined> {
    const fromKey = space.keyOf(from);
    const lo = space.keyOf(blockStart(from, space.blockMs));
    if (lo >= fromKey) return undefined;
    const found = await this.level.iterator({ gte: lo, lt: fromKey, reverse: true, limit: 1, ...(snapshot ? { snapshot } : {}) }).all();
    if (found.length === 0) return undefined;
    const [key, value] = found[0]!;
    const d = space.codec.decode(pointTime(key), value);
    if (!asStored) space.overlay?.(d.ts, d.es);
    return d.ts[d.ts.length - 1]! >= from ? { key, ts: d.ts, es: d.es } : undefined;
  }
}
