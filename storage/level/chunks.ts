import { endianness } from 'node:os';
import type { Value } from '../../core/datapoint.js';
import { decodeValue, type StoredValue } from '../store.js';
import { isAgg, type Agg, type RollupEntry } from '../rollups.js';

/**
 * Chunks: one LevelDB entry holds a run of consecutive entries of one series (raw points of
 * a datapoint, or rollup buckets of one datapoint and resolution). Reading 86,400 keys costs
 * the native iterator ~0.8 µs each here, so a day of 1 s data cannot be answered in 50 ms
 * one key per point; a few hundred chunks can.
 *
 * Invariants, per series:
 *  - a chunk's key is its first entry's time (`p!<id>!<t>` / `r!<res>!<id>!<bucket>`), so a
 *    value written one entry per key by earlier versions is a chunk of one;
 *  - chunks never overlap in time, and never cross a block boundary (epoch multiples of
 *    `blockMs`), so the chunk holding time t is the last key at or below t, at or above
 *    t's block start, and deleting every key below a block boundary deletes exactly the
 *    entries before it;
 *  - a chunk holds at most CHUNK_MAX entries.
 * The newest chunk of a series is extended (rewritten) while it holds fewer than LIVE_MAX
 * (rollups: ROLLUP_LIVE_MAX) entries: live data, one reading per commit, then costs one small rewrite per commit
 * instead of a key per reading, and queries over live data read LIVE_MAX readings per key
 * (see CutMode for rollups).
 */
export const CHUNK_MAX = 512;
/** Raw points written live: the newest chunk is rewritten with each commit, so it stays small. */
export const LIVE_MAX = 16;
/**
 * Rollup buckets: the newest bucket sits alone (CutMode `head`) and joins the chunk before it
 * only when a new bucket starts, so that chunk may be longer: a year of 15 min buckets
 * written live is ~1,100 keys.
 */
export const ROLLUP_LIVE_MAX = 32;

/** Raw points: chunks never cross a UTC day. */
export const RAW_BLOCK_MS = 86_400_000;

/** Rollup chunks never cross these (epoch multiples of whole days, so a day cutoff never splits a 1 min chunk). */
export function rollupBlockMs(resolutionMs: number): number {
  if (resolutionMs <= 60_000) return 86_400_000; // 1 min: a day, 1,440 buckets
  if (resolutionMs <= 900_000) return 30 * 86_400_000; // 15 min: 2,880 buckets
  if (resolutionMs <= 3_600_000) return 90 * 86_400_000; // 1 h: 2,160 buckets
  return 2048 * 86_400_000; // 1 d
}

export function blockStart(t: number, blockMs: number): number {
  return Math.floor(t / blockMs) * blockMs;
}

/** A decoded chunk: entry times ascending and their entries. */
export interface Chunk<E> {
  key: string;
  ts: number[];
  es: E[];
  /**
   * Read by a commit (LevelStore): the first time of the chunk after it on disk, when the read
   * saw one (it may have been left out, see LevelStore.readChunks): chunks rewritten together
   * must not reach past it.
   */
  next?: number;
}

/**
 * Encodes entries `W` (E or lighter forms of it) to a value's bytes and decodes to `E`.
 * Values are read as bytes; those of earlier versions were text (UTF-8 on disk) and are
 * decoded as such (a string is taken as that text).
 */
export interface ChunkCodec<E, W = E> {
  encode(ts: readonly number[], es: readonly W[]): Buffer;
  /** Decodes a stored value whose key carries time `keyT` (the first entry's). */
  decode(keyT: number, raw: Buffer | string): { ts: number[]; es: E[] };
  /** Entries in a stored value, without decoding them (retention counts what it deletes). */
  count(raw: Buffer | string): number;
}

/**
 * Markers (first byte) of the chunk layouts. Values written as bytes: raw chunks 6, rollup
 * chunks 7. Earlier versions wrote the same layouts as latin1 text, stored as its UTF-8
 * (every byte from 0x80 took two): raw 2, rollups 3 (ten doubles a bucket) and 5.
 */
const RAW_MARK = 2;
const ROLLUP_MARK = 3;
const RAW_BYTES_MARK = 6;
const ROLLUP_BYTES_MARK = 7;
/** Marker byte, three zero bytes, uint32 LE entry count: the doubles after it start 8-byte aligned. */
const HEADER = 8;
const LITTLE_ENDIAN = endianness() === 'LE';

/** Encoding and decoding scratch, 8-byte aligned (its own ArrayBuffer) so doubles are read through a Float64Array. */
let scratch = Buffer.from(new ArrayBuffer(64 * 1024));
function scratchOf(bytes: number): Buffer {
  if (scratch.length < bytes) scratch = Buffer.from(new ArrayBuffer(Math.max(bytes, scratch.length * 2)));
  return scratch;
}

function doubles(b: Buffer, count: number): Float64Array {
  return new Float64Array(b.buffer, b.byteOffset + HEADER, count);
}

/** Doubles on disk are little-endian; a big-endian host swaps them in the scratch. */
function toDisk(b: Buffer, count: number): void {
  if (!LITTLE_ENDIAN) b.subarray(HEADER, HEADER + 8 * count).swap64();
}
const fromDisk = toDisk;

function writeHeader(b: Buffer, mark: number, n: number): void {
  b[0] = mark;
  b[1] = 0;
  b[2] = 0;
  b[3] = 0;
  b.writeUInt32LE(n, 4);
}

/** The bytes of a value with a layout written as bytes, or its text (earlier versions). */
function bytesOrText(raw: Buffer | string, bytesMark: number): Buffer | string {
  if (typeof raw === 'string') return raw;
  return raw.length >= HEADER && raw[0] === bytesMark ? raw : raw.toString('utf8');
}

/** `count` doubles after the header of a value's bytes, in host order: a view of them when aligned, else a copy. */
function doublesOfBytes(raw: Buffer, offset: number, count: number): Float64Array {
  if (LITTLE_ENDIAN && (raw.byteOffset + offset) % 8 === 0) return new Float64Array(raw.buffer, raw.byteOffset + offset, count);
  const b = scratchOf(offset + 8 * count);
  raw.copy(b, 0, 0, offset + 8 * count);
  if (!LITTLE_ENDIAN) b.subarray(offset, offset + 8 * count).swap64();
  return new Float64Array(b.buffer, b.byteOffset + offset, count);
}

/** The scratch's first `bytes` bytes as a value of its own. */
function ownValue(b: Buffer, bytes: number): Buffer {
  return Buffer.from(b.subarray(0, bytes));
}

function headerCount(raw: string, mark: number): number | undefined {
  if (raw.charCodeAt(0) !== mark || raw.length < HEADER) return undefined;
  return raw.charCodeAt(4) | (raw.charCodeAt(5) << 8) | (raw.charCodeAt(6) << 16) | (raw.charCodeAt(7) * 0x1000000);
}

/** The scratch holding the first `bytes` bytes of a value built from latin1 characters, doubles in host order. */
function bytesOf(raw: string, bytes: number): Buffer {
  const b = scratchOf(bytes);
  b.write(raw, 0, bytes, 'latin1');
  fromDisk(b, (bytes - HEADER) / 8);
  return b;
}

/**
 * Raw chunk value: marker 6, entry count, the times and the values as IEEE 754 doubles
 * (little-endian), then, as UTF-8 JSON, the entries a double cannot carry:
 * `[[index, value, quality?], …]` for strings, booleans, objects, null, non-finite numbers
 * and any reading with a quality flag (their double is NaN). Earlier layouts still read: the
 * same as text (marker 2, one latin1 character per byte), and values of one reading per key,
 * `[v]` / `[v, q]` JSON.
 */
export const rawCodec: ChunkCodec<StoredValue> = {
  encode(ts, es) {
    const n = ts.length;
    const b = scratchOf(HEADER + 16 * n);
    writeHeader(b, RAW_BYTES_MARK, n);
    const d = doubles(b, 2 * n);
    let other: Array<[number, Value, ('stale' | 'bad')?]> | undefined;
    for (let i = 0; i < n; i++) {
      d[i] = ts[i]!;
      const e = es[i]!;
      const v = e.v;
      if (typeof v === 'number' && Number.isFinite(v) && !e.q) d[n + i] = v;
      else {
        d[n + i] = Number.NaN;
        (other ??= []).push(e.q ? [i, v, e.q] : [i, v]);
      }
    }
    toDisk(b, 2 * n);
    if (!other) return ownValue(b, HEADER + 16 * n);
    return Buffer.concat([b.subarray(0, HEADER + 16 * n), Buffer.from(JSON.stringify(other), 'utf8')]);
  },
  decode(keyT, value) {
    const raw = bytesOrText(value, RAW_BYTES_MARK);
    if (typeof raw !== 'string') return decodeRawBytes(raw);
    const n = headerCount(raw, RAW_MARK);
    // One reading per key (earlier versions): `[v]` or `[v, q]`.
    if (n === undefined) return { ts: [keyT], es: [decodeValue(keyT, raw)] };
    const length = HEADER + 16 * n;
    return rawEntries(n, doubles(bytesOf(raw, length), 2 * n), raw.length > length ? raw.slice(length) : undefined);
  },
  count(value) {
    const raw = bytesOrText(value, RAW_BYTES_MARK);
    if (typeof raw !== 'string') return raw.readUInt32LE(4);
    return headerCount(raw, RAW_MARK) ?? 1;
  },
};

function decodeRawBytes(raw: Buffer): { ts: number[]; es: StoredValue[] } {
  const n = raw.readUInt32LE(4);
  const length = HEADER + 16 * n;
  return rawEntries(n, doublesOfBytes(raw, HEADER, 2 * n), raw.length > length ? raw.toString('utf8', length) : undefined);
}

/** A raw chunk's entries from its n times and n values (`d`) and its JSON tail of the other entries. */
function rawEntries(n: number, d: Float64Array, json: string | undefined): { ts: number[]; es: StoredValue[] } {
  const ts = new Array<number>(n);
  const es = new Array<StoredValue>(n);
  for (let i = 0; i < n; i++) {
    const t = d[i]!;
    ts[i] = t;
    es[i] = { t, v: d[n + i]! };
  }
  if (json !== undefined) {
    for (const [i, v, q] of JSON.parse(json) as Array<[number, Value, ('stale' | 'bad')?]>) es[i] = q ? { t: ts[i]!, v, q } : { t: ts[i]!, v };
  }
  return { ts, es };
}

const AGG_DOUBLES = 10; // bucket, then the nine aggregate fields
const SINGLE_DOUBLES = 3; // bucket, then the reading's time and value
const ROLLUP_COMPACT_MARK = 5;

/** The nine aggregate fields stored after a bucket start at `d[o]`. */
function fullAgg(d: Float64Array, o: number): Agg {
  return { count: d[o + 1]!, sum: d[o + 2]!, min: d[o + 3]!, max: d[o + 4]!, ft: d[o + 5]!, fv: d[o + 6]!, lt: d[o + 7]!, lv: d[o + 8]!, inc: d[o + 9]! };
}

/** A bucket holding one reading: all of it is that reading's time and value. */
function isSingleReading(a: Agg): boolean {
  return a.count === 1 && a.inc === 0 && a.ft === a.lt && a.sum === a.fv && a.min === a.fv && a.max === a.fv && a.lv === a.fv;
}

function isSingle(e: RollupEntry): boolean {
  return !isAgg(e) || isSingleReading(e);
}

/**
 * Rollup chunk value: marker 7, entry count n, n kind bytes (padded to 8), then per bucket
 * either three doubles, the bucket start and its one reading's time and value (kind 1:
 * trend data every 5 or 15 min makes every 1 min and 15 min bucket one reading), or ten: the
 * bucket start and count, sum, min, max, first time, first value, last time, last value,
 * counter increase (kind 0). Doubles little-endian. Earlier layouts still read: the same as
 * text (marker 5), marker 3 with ten doubles per bucket, and single buckets (`\u0001` + nine
 * doubles, or JSON).
 */
export function rollupCodec(decodeSingle: (raw: string) => Agg): ChunkCodec<Agg, RollupEntry>;
/**
 * `readings`: a bucket of one reading decodes to that reading (`{ t, v }`, what the append path
 * writes, see RollupEntry) instead of a nine-field aggregate: a re-imported file of 5-15 min
 * trend data reads every 1 min and 15 min bucket it overwrites, and their aggregates were most of
 * its allocations. For the write path only; readers that want aggregates use the default.
 */
export function rollupCodec(decodeSingle: (raw: string) => Agg, readings: true): ChunkCodec<RollupEntry, RollupEntry>;
export function rollupCodec(decodeSingle: (raw: string) => Agg, readings = false): ChunkCodec<RollupEntry, RollupEntry> {
  return {
    encode(ts, es) {
      const n = ts.length;
      let singles = 0;
      for (let i = 0; i < n; i++) if (isSingle(es[i]!)) singles++;
      const kinds = Math.ceil(n / 8) * 8;
      const count = SINGLE_DOUBLES * singles + AGG_DOUBLES * (n - singles);
      const bytes = HEADER + kinds + 8 * count;
      const b = scratchOf(bytes);
      writeHeader(b, ROLLUP_BYTES_MARK, n);
      b.fill(0, HEADER, HEADER + kinds);
      const d = new Float64Array(b.buffer, b.byteOffset + HEADER + kinds, count);
      for (let i = 0, o = 0; i < n; i++) {
        const a = es[i]!;
        d[o] = ts[i]!;
        if (!isAgg(a)) {
          b[HEADER + i] = 1;
          d[o + 1] = a.t;
          d[o + 2] = a.v;
          o += SINGLE_DOUBLES;
          continue;
        }
        if (isSingleReading(a)) {
          b[HEADER + i] = 1;
          d[o + 1] = a.ft;
          d[o + 2] = a.fv;
          o += SINGLE_DOUBLES;
          continue;
        }
        d[o + 1] = a.count;
        d[o + 2] = a.sum;
        d[o + 3] = a.min;
        d[o + 4] = a.max;
        d[o + 5] = a.ft;
        d[o + 6] = a.fv;
        d[o + 7] = a.lt;
        d[o + 8] = a.lv;
        d[o + 9] = a.inc;
        o += AGG_DOUBLES;
      }
      if (!LITTLE_ENDIAN) b.subarray(HEADER + kinds, bytes).swap64();
      return ownValue(b, bytes);
    },
    decode(keyT, value) {
      const raw = bytesOrText(value, ROLLUP_BYTES_MARK);
      if (typeof raw !== 'string') return decodeCompact(raw.readUInt32LE(4), raw, readings);
      const compact = headerCount(raw, ROLLUP_COMPACT_MARK);
      if (compact !== undefined) {
        const b = scratchOf(raw.length);
        b.write(raw, 0, raw.length, 'latin1');
        return decodeCompact(compact, b.subarray(0, raw.length), readings);
      }
      const n = headerCount(raw, ROLLUP_MARK);
      if (n === undefined) return { ts: [keyT], es: [decodeSingle(raw)] };
      const d = doubles(bytesOf(raw, HEADER + 8 * AGG_DOUBLES * n), AGG_DOUBLES * n);
      const ts = new Array<number>(n);
      const es = new Array<Agg>(n);
      for (let i = 0, o = 0; i < n; i++, o += AGG_DOUBLES) {
        ts[i] = d[o]!;
        es[i] = fullAgg(d, o);
      }
      return { ts, es };
    },
    count(value) {
      const raw = bytesOrText(value, ROLLUP_BYTES_MARK);
      if (typeof raw !== 'string') return raw.readUInt32LE(4);
      return headerCount(raw, ROLLUP_COMPACT_MARK) ?? headerCount(raw, ROLLUP_MARK) ?? 1;
    },
  };
}

/** A compact rollup chunk's buckets from its bytes (marker, count, kinds, doubles); `readings`: one-reading buckets as that reading. */
function decodeCompact(n: number, raw: Buffer, readings = false): { ts: number[]; es: Agg[] } {
  const kinds = Math.ceil(n / 8) * 8;
  const d = doublesOfBytes(raw, HEADER + kinds, (raw.length - HEADER - kinds) / 8);
  const ts = new Array<number>(n);
  const es = new Array<Agg>(n);
  for (let i = 0, o = 0; i < n; i++) {
    ts[i] = d[o]!;
    if (raw[HEADER + i] === 1) {
      const t = d[o + 1]!;
      const v = d[o + 2]!;
      // (Typed as Agg for the default codec's sake: with `readings` the caller takes RollupEntry.)
      es[i] = readings ? ({ t, v } as unknown as Agg) : { count: 1, sum: v, min: v, max: v, ft: t, fv: v, lt: t, lv: v, inc: 0 };
      o += SINGLE_DOUBLES;
    } else {
      es[i] = fullAgg(d, o);
      o += AGG_DOUBLES;
    }
  }
  return { ts, es };
}

/**
 * How the newest chunks of a series are cut: `none`, not specially; `tail` (raw points): a
 * newest chunk longer than `liveMax` gives its last entry a chunk of its own, so the next
 * appends extend a small chunk; `head` (rollups): the newest entry always sits alone,
 * because live data updates the current bucket with every commit and that should rewrite
 * one bucket, not its neighbours.
 */
export type CutMode = 'none' | 'tail' | 'head';

/**
 * A chunk rewritten with changes keeps its start (see `cut`) once the chunk before it holds
 * this many entries: smaller ones (written live) are joined up.
 */
export const KEEP_BOUNDARY_MIN = 64;

/**
 * Cuts entries (times ascending) into chunks: at block boundaries and every CHUNK_MAX entries, then the newest as `mode` says.
 * `starts` (ascending): where the chunks being rewritten started; a chunk holding at least
 * KEEP_BOUNDARY_MIN entries ends before the next of them, so overwriting a range rewrites the
 * chunks it lands in as they were, instead of joining them into longer ones that the next
 * batch of a re-import reads and rewrites again.
 */
export function cut<E>(
  ts: readonly number[],
  es: readonly E[],
  blockMs: number,
  mode: CutMode,
  liveMax = LIVE_MAX,
  starts: readonly number[] = [],
): Array<{ ts: number[]; es: E[] }> {
  const out: Array<{ ts: number[]; es: E[] }> = [];
  let from = 0;
  let s = 0;
  while (from < ts.length) {
    const end = blockStart(ts[from]!, blockMs) + blockMs;
    while (s < starts.length && starts[s]! <= ts[from]!) s++;
    let to = from + 1;
    for (; to < ts.length && to - from < CHUNK_MAX && ts[to]! < end; to++) {
      if (s < starts.length && ts[to]! >= starts[s]!) {
        if (to - from >= KEEP_BOUNDARY_MIN) break;
        while (s < starts.length && starts[s]! <= ts[to]!) s++;
      }
    }
    out.push(from === 0 && to === ts.length ? { ts: ts as number[], es: es as E[] } : { ts: ts.slice(from, to), es: es.slice(from, to) });
    from = to;
  }
  const last = out[out.length - 1];
  if (last && ((mode === 'tail' && last.ts.length > liveMax) || (mode === 'head' && last.ts.length > 1))) {
    const n = last.ts.length - 1;
    out[out.length - 1] = { ts: last.ts.slice(0, n), es: last.es.slice(0, n) };
    out.push({ ts: [last.ts[n]!], es: [last.es[n]!] });
  }
  return out;
}

/**
 * Appends entries newer than everything in `chunks` to the newest chunk itself when they fit
 * (it holds fewer than `liveMax` with them, same block): live data extending a small chunk.
 * Entries go in as `own` returns them (a copy, when the caller's objects must not be kept).
 * Returns false, changing nothing, otherwise. The caller owns the chunk.
 */
export function extendInPlace<E>(
  chunks: ReadonlyArray<Chunk<E>>,
  ts: readonly number[],
  es: readonly E[],
  blockMs: number,
  liveMax: number,
  own: (e: E) => E = (e) => e,
): boolean {
  const last = chunks[chunks.length - 1];
  if (!last || last.ts.length + ts.length > liveMax) return false;
  if (ts[ts.length - 1]! >= blockStart(last.ts[0]!, blockMs) + blockMs) return false;
  for (let i = 0; i < ts.length; i++) {
    last.ts.push(ts[i]!);
    last.es.push(own(es[i]!));
  }
  return true;
}

/**
 * Entries of `chunks` (ascending, disjoint) with `changes` applied: a change replaces the
 * entry at its time, or removes it when its entry is null. Both inputs ascending.
 */
export function mergeEntries<E>(chunks: readonly Chunk<E>[], changeTs: readonly number[], changeEs: ReadonlyArray<E | null>): { ts: number[]; es: E[] } {
  const ts: number[] = [];
  const es: E[] = [];
  let j = 0;
  for (const c of chunks) {
    for (let i = 0; i < c.ts.length; i++) {
      const t = c.ts[i]!;
      while (j < changeTs.length && changeTs[j]! < t) {
        const e = changeEs[j];
        if (e !== null && e !== undefined) {
          ts.push(changeTs[j]!);
          es.push(e);
        }
        j++;
      }
      if (j < changeTs.length && changeTs[j] === t) {
        const e = changeEs[j];
        if (e !== null && e !== undefined) {
          ts.push(t);
          es.push(e);
        }
        j++;
      } else {
        ts.push(t);
        es.push(c.es[i]!);
      }
    }
  }
  for (; j < changeTs.length; j++) {
    const e = changeEs[j];
    if (e !== null && e !== undefined) {
      ts.push(changeTs[j]!);
      es.push(e);
    }
  }
  return { ts, es };
}
