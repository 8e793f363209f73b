import { endianness } from 'node:os';
import type { Value } from '../../core/datapoint.js';
import type { StoredValue } from '../store.js';

/** One outbox record as stored: `[id, t, v]` or `[id, t, v, q]` (seq = the commit's first + index). */
export type OutboxRow = [string, number, StoredValue['v'], ('stale' | 'bad')?];

type Quality = 'stale' | 'bad';

/**
 * A commit's outbox records in one value, written without turning numbers into text
 * (that, and a string per record, was a visible part of ingest): marker 9, three zero
 * bytes, uint32 LE record count n; then n times and n values as little-endian doubles and n
 * datapoint indexes as uint32 LE (padded to 8 bytes); then, as UTF-8, JSON
 * `{"ids":[…],"x":[[index, value, quality?], …]}` with the datapoint ids and the records a
 * double cannot carry (strings, booleans, objects, null, non-finite numbers, quality flags;
 * their double is NaN). Stored as bytes, as the chunks (storage/level/chunks.ts). Earlier versions
 * wrote the same as text (marker 4, one latin1 character per byte) or JSON rows
 * `[[id, t, v, q?], …]` (or one row); all read.
 */
const MARK = 9;
const TEXT_MARK = 4;
const HEADER = 8;
const LITTLE_ENDIAN = endianness() === 'LE';

/** Collects one commit's records; `encode` gives the stored value. Reused commit after commit. */
export class OutboxEncoder {
  private n = 0;
  private times = new Float64Array(1024);
  private values = new Float64Array(1024);
  private idIndex = new Uint32Array(1024);
  private ids: string[] = [];
  private other: Array<[number, Value, Quality?]> = [];

  get count(): number {
    return this.n;
  }

  /** Starts a commit's records. */
  reset(): void {
    this.n = 0;
    this.ids = [];
    this.other = [];
  }

  /** Registers a datapoint of this commit; its records then name it by the returned index. */
  addId(id: string): number {
    this.ids.push(id);
    return this.ids.length - 1;
  }

  add(idIndex: number, t: number, v: Value, q: Quality | undefined): void {
    const i = this.n++;
    if (i === this.times.length) this.grow();
    this.times[i] = t;
    this.idIndex[i] = idIndex;
    if (typeof v === 'number' && Number.isFinite(v) && !q) this.values[i] = v;
    else {
      this.values[i] = Number.NaN;
      this.other.push(q ? [i, v, q] : [i, v]);
    }
  }

  encode(): Buffer {
    const n = this.n;
    const idBytes = 4 * n + ((4 * n) % 8);
    const bytes = HEADER + 16 * n + idBytes;
    const b = Buffer.allocUnsafe(bytes);
    b[0] = MARK;
    b[1] = 0;
    b[2] = 0;
    b[3] = 0;
    b.writeUInt32LE(n, 4);
    const doubles = Buffer.from(this.times.buffer, 0, 8 * n);
    doubles.copy(b, HEADER);
    Buffer.from(this.values.buffer, 0, 8 * n).copy(b, HEADER + 8 * n);
    Buffer.from(this.idIndex.buffer, 0, 4 * n).copy(b, HEADER + 16 * n);
    if (!LITTLE_ENDIAN) {
      b.subarray(HEADER, HEADER + 16 * n).swap64();
      b.subarray(HEADER + 16 * n, HEADER + 16 * n + 4 * n).swap32();
    }
    b.fill(0, HEADER + 16 * n + 4 * n);
    return Buffer.concat([b, Buffer.from(JSON.stringify({ ids: this.ids, x: this.other }), 'utf8')]);
  }

  private grow(): void {
    const size = this.times.length * 2;
    const times = new Float64Array(size);
    times.set(this.times);
    const values = new Float64Array(size);
    values.set(this.values);
    const idIndex = new Uint32Array(size);
    idIndex.set(this.idIndex);
    this.times = times;
    this.values = values;
    this.idIndex = idIndex;
  }
}

/** A stored outbox value's records, in order (bytes as read from disk, or text). */
export function decodeOutbox(value: Buffer | string): OutboxRow[] {
  if (typeof value !== 'string') {
    if (value.length >= HEADER && value[0] === MARK) {
      const n = value.readUInt32LE(4);
      const binaryEnd = HEADER + 16 * n + 4 * n + ((4 * n) % 8);
      return rowsOf(n, value.subarray(HEADER, binaryEnd), value.toString('utf8', binaryEnd));
    }
    value = value.toString('utf8');
  }
  if (value.charCodeAt(0) !== TEXT_MARK) {
    // Earlier versions: JSON rows, or one row per key.
    const parsed = JSON.parse(value) as OutboxRow[] | OutboxRow;
    return Array.isArray(parsed[0]) ? (parsed as OutboxRow[]) : [parsed as OutboxRow];
  }
  const n = Buffer.from(value.slice(0, HEADER), 'latin1').readUInt32LE(4);
  const binaryEnd = HEADER + 16 * n + 4 * n + ((4 * n) % 8);
  return rowsOf(n, Buffer.from(value.slice(HEADER, binaryEnd), 'latin1'), value.slice(binaryEnd));
}

/** Records from the binary part (times, values, id indexes) and the JSON part. */
function rowsOf(n: number, data: Buffer, json: string): OutboxRow[] {
  const { ids, x } = JSON.parse(json) as { ids: string[]; x: Array<[number, Value, Quality?]> };
  const rows = new Array<OutboxRow>(n);
  for (let i = 0; i < n; i++) {
    rows[i] = [ids[data.readUInt32LE(16 * n + 4 * i)]!, data.readDoubleLE(8 * i), data.readDoubleLE(8 * n + 8 * i)];
  }
  for (const [i, v, q] of x) {
    const row = rows[i]!;
    row[2] = v;
    if (q) row[3] = q;
  }
  return rows;
}
