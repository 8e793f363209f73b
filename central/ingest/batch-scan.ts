import { OutpostError } from '../../core/errors.js';
import { decodeBatch, type WireBatch } from '../../runtime/sync/codec.js';
import { internId, RecordColumns } from '../store/record-columns.js';
import { MAX_TIME } from './records.js';

/** A batch whose records went straight from its JSON bytes into columns, all of them valid. */
export interface ScannedBatch extends Omit<WireBatch, 'records'> {
  columns: RecordColumns;
}

/**
 * Decodes a batch (plain JSON, inflated already) for ingest: its records scanned straight into
 * columns when they all have the plain shape a gateway's link writes, else JSON.parse and the
 * record checks (records.ts) as before. Every batch of the bench and of a gateway that sends
 * numbers goes the scanned way: JSON.parse made an array, an id string and boxed numbers per
 * record, and checking them took as long again (a receiver's CPU profile: 1.1 of its 9 s per
 * million records, and a share of the 1 s of GC).
 */
export function decodeIngestBatch(json: Buffer): WireBatch | ScannedBatch {
  return scanBatch(json) ?? decodeBatch(json);
}

const RECORDS_KEY = Buffer.from('"records":[', 'latin1');
const EMPTY_RECORDS = Buffer.from('[]}', 'latin1');
const STALE = Buffer.from('"stale"', 'latin1');
const BAD = Buffer.from('"bad"', 'latin1');

/** The shortest record, `[0,"a",0,0]`, and its comma. */
const MIN_RECORD_BYTES = 12;
/** Records the columns have room for at first (doubled as needed). */
const FIRST_CAPACITY = 256;
/** Longer number texts are converted by Number(): the exponent arithmetic above stays exact. */
const MAX_FAST_NUMBER_CHARS = 64;
/** Exact powers of ten in a double: up to 10^22 (ECMA-262 Number::toString; Clinger's fast path). */
const POW10 = Array.from({ length: 23 }, (_, k) => 10 ** k);

/** 1 for the bytes of a datapoint id, [a-z0-9_.-] (core/datapoint.ts DATAPOINT_ID); a read past the end is undefined, not 1 either. */
const ID_BYTE = new Uint8Array(256);
for (const c of Buffer.from('abcdefghijklmnopqrstuvwxyz0123456789_.-', 'latin1')) ID_BYTE[c] = 1;

/** Ids by a hash of their bytes: a record's id is found without making a string of it. */
const MAX_ID_HASHES = 250_000;
const idsByHash = new Map<number, string>();

/** The bytes the scanner looks for (ASCII). */
const Byte = {
  Quote: 0x22,
  Comma: 0x2c,
  Minus: 0x2d,
  Plus: 0x2b,
  Dot: 0x2e,
  Zero: 0x30,
  One: 0x31,
  Nine: 0x39,
  Open: 0x5b,
  Close: 0x5d,
  Brace: 0x7d,
  E: 0x45,
  e: 0x65,
  b: 0x62,
  s: 0x73,
} as const;

/**
 * The batch with its records as columns, or undefined when anything in it is not the plain
 * shape: the header `{…,"records":[` (any fields and order JSON.parse and `decodeBatch` accept,
 * records last), then records `[seq,"id",t,v]` or `[seq,"id",t,v,"stale"|"bad"]` with seq and t
 * plain integers in range, an id of [a-z0-9_.-]{1,128} without escapes, v a finite JSON
 * number, no whitespace, and `]}` at the end. What it accepts is exactly what JSON.parse and
 * records.ts would accept and store, with the same numbers (test/central/batch-scan.test.ts
 * compares both on random and damaged batches); anything else (a string or JSON value, a bad
 * record, whitespace, an escape) goes the general way, which also says what is wrong.
 */
export function scanBatch(json: Buffer): ScannedBatch | undefined {
  const at = json.indexOf(RECORDS_KEY);
  if (at < 0) return undefined;
  const open = at + RECORDS_KEY.length - 1;
  const header = headerOf(json, open);
  if (header === undefined) return undefined;
  const columns = new RecordScanner(json, open).scan();
  if (columns === undefined) return undefined;
  const { records: _empty, ...rest } = header;
  return { ...rest, columns };
}

/**
 * The header as `decodeBatch` checks it, with an empty records array; undefined if it refuses
 * it, or if the matched bytes were not the key of its last member: a key that only ends in
 * them (`"x\"records":[`, after the real records under an escaped or spaced key) parses too.
 */
function headerOf(json: Buffer, open: number): WireBatch | undefined {
  try {
    const header = decodeBatch(Buffer.concat([json.subarray(0, open), EMPTY_RECORDS]));
    const keys = Object.keys(header);
    return keys[keys.length - 1] === 'records' ? header : undefined;
  } catch (err) {
    // Not a header on its own (the key was inside a value, or the batch is damaged): the
    // general way parses all of it and gives the error a client should see.
    if (err instanceof OutpostError && err.code === 'VALUE_MALFORMED') return undefined;
    throw err;
  }
}

/** `a` in a new array of `length` (typed arrays do not grow). */
function grown<T extends Float64Array | Uint8Array>(a: T, length: number): T {
  const out = new (a.constructor as new (n: number) => T)(length);
  out.set(a);
  return out;
}

class RecordScanner {
  private at: number;

  constructor(
    private readonly b: Buffer,
    open: number,
  ) {
    this.at = open + 1;
  }

  scan(): RecordColumns | undefined {
    const { b } = this;
    // Room for the records grows as they come: a large body may turn out not to be scannable.
    let capacity = Math.min(Math.floor((b.length - this.at) / MIN_RECORD_BYTES) + 1, FIRST_CAPACITY);
    let numbers = new Float64Array(3 * capacity);
    const ids: string[] = [];
    let qualities: Uint8Array | undefined;
    let n = 0;
    if (b[this.at] === Byte.Close) this.at++;
    else
      for (;;) {
        if (n === capacity) {
          capacity *= 2;
          numbers = grown(numbers, 3 * capacity);
          if (qualities) qualities = grown(qualities, capacity);
        }
        if (b[this.at++] !== Byte.Open) return undefined;
        const seq = this.uint();
        if (seq < 0 || b[this.at++] !== Byte.Comma) return undefined;
        const id = this.id();
        if (id === undefined || b[this.at++] !== Byte.Comma) return undefined;
        const t = this.uint();
        if (t < 0 || b[this.at++] !== Byte.Comma) return undefined;
        const v = this.number();
        if (Number.isNaN(v)) return undefined;
        let next = b[this.at++];
        if (next === Byte.Comma) {
          const quality = this.quality();
          if (quality === 0) return undefined;
          (qualities ??= new Uint8Array(capacity))[n] = quality;
          next = b[this.at++];
        }
        if (next !== Byte.Close) return undefined;
        numbers[3 * n] = seq;
        numbers[3 * n + 1] = t;
        numbers[3 * n + 2] = v;
        ids.push(id);
        n++;
        next = b[this.at++];
        if (next === Byte.Close) break;
        if (next !== Byte.Comma) return undefined;
      }
    if (b[this.at++] !== Byte.Brace || this.at !== b.length) return undefined;
    // Trimmed when more than half of the room went unused (the first estimate is for the shortest records).
    const used = 3 * n < numbers.length / 2 ? numbers.slice(0, 3 * n) : numbers;
    return RecordColumns.of(n, used, ids, qualities?.slice(0, n), undefined);
  }

  /** A JSON integer of digits only (no sign, fraction or exponent), at most MAX_TIME; -1 otherwise. */
  private uint(): number {
    const { b } = this;
    let c = b[this.at]!;
    if (c === Byte.Zero) {
      c = b[++this.at]!;
      return c >= Byte.Zero && c <= Byte.Nine ? -1 : 0; // JSON has no leading zeros
    }
    let n = 0;
    let digits = 0;
    while (c >= Byte.Zero && c <= Byte.Nine) {
      n = n * 10 + (c - Byte.Zero);
      if (++digits > 15) return -1;
      c = b[++this.at]!;
    }
    if (digits === 0 || c === Byte.Dot || c === Byte.e || c === Byte.E || n > MAX_TIME) return -1;
    return n;
  }

  /** `"id"` of [a-z0-9_.-]{1,128}: the process's one string for it (record-columns.ts internId). */
  private id(): string | undefined {
    const { b } = this;
    if (b[this.at++] !== Byte.Quote) return undefined;
    const start = this.at;
    let hash = 0x811c9dc5; // FNV-1a
    let c = b[this.at]!;
    while (c !== Byte.Quote) {
      if (ID_BYTE[c] !== 1) return undefined;
      hash = Math.imul(hash ^ c, 0x01000193);
      c = b[++this.at]!;
    }
    const end = this.at++;
    const length = end - start;
    if (length < 1 || length > 128) return undefined;
    const known = idsByHash.get(hash);
    if (known !== undefined && known.length === length) {
      let same = true;
      for (let k = 0; k < length && same; k++) same = known.charCodeAt(k) === b[start + k];
      if (same) return known;
    }
    const id = internId(b.toString('latin1', start, end));
    if (idsByHash.size >= MAX_ID_HASHES) idsByHash.clear();
    idsByHash.set(hash, id);
    return id;
  }

  /**
   * A finite JSON number (RFC 8259 §6), NaN when it is not one. Up to 15 significant digits and
   * a decimal exponent within ±22 the double is the digits times or divided by an exact power
   * of ten, one correctly rounded operation (Clinger's fast path): the value JSON.parse gives.
   * Longer ones are converted by Number() from their text.
   */
  private number(): number {
    const { b } = this;
    const start = this.at;
    let c = b[this.at]!;
    const negative = c === Byte.Minus;
    if (negative) c = b[++this.at]!;
    let mantissa = 0;
    let significant = 0;
    let exponent = 0;
    if (c === Byte.Zero) {
      c = b[++this.at]!;
      if (c >= Byte.Zero && c <= Byte.Nine) return Number.NaN;
    } else if (c >= Byte.One && c <= Byte.Nine) {
      while (c >= Byte.Zero && c <= Byte.Nine) {
        mantissa = mantissa * 10 + (c - Byte.Zero);
        significant++;
        c = b[++this.at]!;
      }
    } else return Number.NaN;
    if (c === Byte.Dot) {
      c = b[++this.at]!;
      if (c < Byte.Zero || c > Byte.Nine) return Number.NaN;
      while (c >= Byte.Zero && c <= Byte.Nine) {
        mantissa = mantissa * 10 + (c - Byte.Zero);
        if (mantissa > 0) significant++;
        exponent--;
        c = b[++this.at]!;
      }
    }
    if (c === Byte.e || c === Byte.E) {
      c = b[++this.at]!;
      const minus = c === Byte.Minus;
      if (minus || c === Byte.Plus) c = b[++this.at]!;
      if (c < Byte.Zero || c > Byte.Nine) return Number.NaN;
      let e = 0;
      while (c >= Byte.Zero && c <= Byte.Nine) {
        e = e * 10 + (c - Byte.Zero);
        c = b[++this.at]!;
      }
      exponent += minus ? -e : e;
    }
    let v: number;
    // An exponent of many digits is no longer exact as a double: such a number goes by Number() too.
    if (significant <= 15 && exponent >= -22 && exponent <= 22 && this.at - start <= MAX_FAST_NUMBER_CHARS) {
      v = exponent >= 0 ? mantissa * POW10[exponent]! : mantissa / POW10[-exponent]!;
      if (negative) v = -v;
    } else v = Number(b.toString('latin1', start, this.at));
    return Number.isFinite(v) ? v : Number.NaN;
  }

  /** `"stale"` (1) or `"bad"` (2), as record-columns.ts codes them; 0 for anything else. */
  private quality(): number {
    if (this.literal(STALE)) return 1;
    if (this.literal(BAD)) return 2;
    return 0;
  }

  /** Whether `bytes` come next (and then steps past them). */
  private literal(bytes: Buffer): boolean {
    const end = this.at + bytes.length;
    if (end > this.b.length || this.b.compare(bytes, 0, bytes.length, this.at, end) !== 0) return false;
    this.at = end;
    return true;
  }
}
