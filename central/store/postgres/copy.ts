import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import type { PoolClient } from './db.js';

/**
 * `COPY … FROM STDIN (FORMAT binary)` (PostgreSQL docs, "COPY", File Formats: Binary Format):
 * the signature `PGCOPY\n\377\r\n\0`, a 32-bit flags field and a 32-bit header-extension length,
 * then per row a 16-bit field count and per field a 32-bit length (-1: NULL) and the value in
 * the type's binary send format, and a 16-bit -1 at the end. All integers are big-endian. COPY
 * writes rows in batches and skips the executor's per-row work that an `INSERT … SELECT
 * unnest(…)` pays; the binary format also spares both sides the text of every number and time
 * (PostgreSQL parsing an ISO time is the larger part of a text row's input cost, and the text
 * is garbage the receiver makes per record). The insert path's bulk rows go this way.
 */
const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/** `timestamptz` is sent as microseconds since 2000-01-01 00:00 UTC in an int64 (PostgreSQL's `timestamp_send`). */
const POSTGRES_EPOCH_MS = Date.UTC(2000, 0, 1);
const TWO_32 = 2 ** 32;

/** Rows are sent in pieces of about this many bytes: memory per COPY stays small. */
const PIECE_BYTES = 64 * 1024;

/** Fields of `text` columns that come again and again, encoded once. */
const textBytes = new Map<string, Buffer>();
const MAX_TEXT_CACHE = 4096;

/**
 * Binary COPY rows written into pieces of ~64 KB. A row may span two pieces: COPY's data
 * messages need not end on a row. Each method writes one field of the current row.
 */
export class CopyRows {
  private piece = Buffer.allocUnsafe(PIECE_BYTES);
  /** The piece as a DataView: its setters compile to plain stores, Buffer's write methods check their arguments per field. */
  private view = viewOf(this.piece);
  private at = 0;
  private readonly full: Buffer[] = [];

  constructor() {
    this.room(SIGNATURE.length + 8);
    this.at += SIGNATURE.copy(this.piece, this.at);
    this.int32(0); // flags: no OIDs
    this.int32(0); // no header extension
  }

  /** Starts a row of `fields` fields. */
  row(fields: number): this {
    this.room(2);
    this.view.setInt16(this.at, fields);
    this.at += 2;
    return this;
  }

  int4(n: number): this {
    this.room(8);
    this.int32(4);
    this.int32(n);
    return this;
  }

  /** An int8 from a safe integer: its high and low 32 bits, exact for any |n| < 2^53. */
  int8(n: number): this {
    this.room(12);
    const high = Math.floor(n / TWO_32);
    this.int32(8);
    this.int32(high);
    this.uint32(n - high * TWO_32);
    return this;
  }

  float8(n: number | null): this {
    if (n === null) return this.null();
    this.room(12);
    this.int32(8);
    this.view.setFloat64(this.at, n);
    this.at += 8;
    return this;
  }

  /**
   * Epoch ms as the `timestamptz` that `to_timestamp(ms / 1000)` gives: the conversion every
   * other statement of the store uses (the merge path, queries, the refresh), so a reading
   * written by COPY is equal to the same time written or asked for by them. That is the exact
   * millisecond up to year 2285 (2^53 µs from 2000); past it PostgreSQL's float8 arithmetic
   * (timestamp.c `float8_timestamptz`: rint((seconds - 946684800) * 1e6)) lands a few µs off,
   * and so does this.
   */
  readingTime(ms: number): this {
    this.room(12);
    const us = roundHalfEven((ms / 1000 - POSTGRES_EPOCH_MS / 1000) * 1_000_000);
    const high = Math.floor(us / TWO_32);
    this.int32(8);
    this.int32(high);
    this.uint32(us - high * TWO_32);
    return this;
  }

  /**
   * Epoch ms as `timestamptz`, exactly, as `date_bin` computes a bucket (the dirty minutes).
   * Microseconds past 2^53 are not exact in a double, so the ms are split into 32-bit halves
   * first and each multiplied by 1000.
   */
  timestamptz(ms: number): this {
    this.room(12);
    const d = ms - POSTGRES_EPOCH_MS;
    const high = Math.floor(d / TWO_32);
    const low = (d - high * TWO_32) * 1000; // < 2^42: exact
    const carry = Math.floor(low / TWO_32);
    this.int32(8);
    this.int32(high * 1000 + carry);
    this.uint32(low - carry * TWO_32);
    return this;
  }

  /** A `text` field, UTF-8; values that repeat (gateway ids, qualities) are encoded once. */
  text(value: string | null): this {
    if (value === null) return this.null();
    let bytes = textBytes.get(value);
    if (bytes === undefined) {
      // Its own memory, not a slice of node's shared 8 KB pool, which a cached slice would keep alive.
      bytes = Buffer.allocUnsafeSlow(Buffer.byteLength(value, 'utf8'));
      bytes.write(value, 0, 'utf8');
      if (value.length <= 256) {
        if (textBytes.size >= MAX_TEXT_CACHE) textBytes.clear();
        textBytes.set(value, bytes);
      }
    }
    this.room(4 + bytes.length);
    this.int32(bytes.length);
    this.at += bytes.copy(this.piece, this.at);
    return this;
  }

  /** A `jsonb` field from JSON text: version 1 of jsonb's binary input is that text behind a 1 (`jsonb_recv`). */
  jsonb(json: string | null): this {
    if (json === null) return this.null();
    const length = Buffer.byteLength(json, 'utf8');
    this.room(5 + length);
    this.int32(length + 1);
    this.piece[this.at++] = 1;
    this.at += this.piece.write(json, this.at, 'utf8');
    return this;
  }

  null(): this {
    this.room(4);
    this.int32(-1);
    return this;
  }

  /** Whether a piece is full and waits to be taken. */
  get ready(): boolean {
    return this.full.length > 0;
  }

  /** The pieces filled so far, handed over (the caller streams them). */
  take(): Buffer[] {
    return this.full.splice(0);
  }

  /** The rest, with the end marker: after this the writer is done. */
  end(): Buffer[] {
    this.room(2);
    this.view.setInt16(this.at, -1);
    this.at += 2;
    this.full.push(this.piece.subarray(0, this.at));
    return this.take();
  }

  /** Makes room for `n` more bytes: a full piece is set aside and a new one begun. */
  private room(n: number): void {
    if (this.at + n <= this.piece.length) return;
    if (this.at > 0) this.full.push(this.piece.subarray(0, this.at));
    this.piece = Buffer.allocUnsafe(Math.max(PIECE_BYTES, n));
    this.view = viewOf(this.piece);
    this.at = 0;
  }

  /** Big-endian, as every integer of the format; the caller made room. */
  private int32(n: number): void {
    this.view.setInt32(this.at, n);
    this.at += 4;
  }

  private uint32(n: number): void {
    this.view.setUint32(this.at, n);
    this.at += 4;
  }
}

const viewOf = (piece: Buffer): DataView => new DataView(piece.buffer, piece.byteOffset, piece.length);

/** C's `rint` in its default rounding mode: to the nearest integer, a tie to the even one. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Streams `rows` into `COPY <target> FROM STDIN (FORMAT binary)` on the caller's connection,
 * inside its transaction, `write` putting each row's fields. A row COPY refuses (a duplicate
 * key, no partition) fails the whole COPY with PostgreSQL's error and code, as an INSERT would.
 */
export async function copyRows<T>(c: PoolClient, target: string, rows: Iterable<T>, write: (out: CopyRows, row: T) => void): Promise<void> {
  await pipeline(Readable.from(pieces(rows, write)), c.query(copyFrom(`COPY ${target} FROM STDIN (FORMAT binary)`)));
}

function* pieces<T>(rows: Iterable<T>, write: (out: CopyRows, row: T) => void): Generator<Buffer> {
  const out = new CopyRows();
  for (const row of rows) {
    write(out, row);
    if (out.ready) yield* out.take();
  }
  yield* out.end();
}
