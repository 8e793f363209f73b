import { createHash } from 'node:crypto';
import { OutpostError } from '../../core/errors.js';
import './errors.js';
import { ByteReader, ByteWriter } from './varint.js';

/**
 * Compact codec for mobile-originated (MO) SBD messages: many readings per message,
 * because every 50 bytes cost one credit and an MO message holds at most 340 bytes
 * (9602/9603, ISU AT Command Reference +SBDWB).
 *
 * Wire format, version 1 (all integers are LEB128 varints unless noted):
 *
 *   u8   version (= 1)
 *   u16  fingerprint of the codec table (big-endian), so a mismatched central side fails loudly
 *   uv   message sequence number (idempotency for the central side)
 *   uv   base time: (t - 2020-01-01) / timeResolutionMs of the oldest reading
 *   then series until the end of the message, one per datapoint:
 *     uv   (index << 1) | hasNulls         index = position of the datapoint in the table
 *     uv   count - 1
 *     uv   first time - base time          (in resolution units)
 *     uv   number of runs R                (absent when count = 1)
 *     R ×  (uv delta, uv run length - 1)   time deltas, run-length encoded: a regular series is one run
 *     if hasNulls: ceil(count/8) bytes null bitmap, then ceil(nulls/8) bytes "stale" bitmap (else bad)
 *     values of the non-null readings: zigzag first value, then zigzag deltas, as integers
 *     scaled by 10^decimals (booleans are 0/1)
 *
 * Version 2 (the sync fallback link, runtime/sync/satellite-link.ts) is version 1 with the
 * outbox sequence number of every reading between the base time and the series, so the
 * central side drops these readings again when the primary link backfills the history
 * (runtime/sync/codec.ts `SeqDeduper`):
 *
 *   uv   N = number of readings
 *   uv   outbox seq of the first reading, in decoded order (series by index, then by time)
 *   uv   number of runs R                (absent when N = 1)
 *   R ×  (sv delta, uv run length - 1)   seq deltas in decoded order, run-length encoded
 *
 * Latest values written together have consecutive sequence numbers: one run.
 *
 * The first byte of every MO message says what it is: 1 and 2 are readings, 3 an
 * acknowledgement of MT commands (`mo-ack.ts`), 4 the gateway's storage state (`mo-storage.ts`).
 *
 * The datapoint table (order, decimals, type) is the contract with the central side:
 * append new datapoints at the end; changing it changes the fingerprint.
 */

const CODEC_VERSION = 1;
/** Readings with their outbox sequence numbers (sync fallback link). */
const CODEC_VERSION_SEQ = 2;
/** Epoch of the base timestamp: keeps the varint at 4 bytes for second resolution. */
export const CODEC_EPOCH_MS = Date.UTC(2020, 0, 1);
/** 9602/9603 maximum MO message (ISU AT Command Reference, +SBDWB). */
export const MAX_MO_BYTES = 340;
/** Iridium SBD billing unit (RockBLOCK credit). */
export const CREDIT_BYTES = 50;

export interface CodecDatapoint {
  id: string;
  /** Decimal places kept: values are sent as round(v × 10^decimals). */
  decimals: number;
  type: 'number' | 'boolean';
}

export interface CodecTable {
  datapoints: readonly CodecDatapoint[];
  /** Timestamp resolution in ms (1000 = seconds). */
  timeResolutionMs: number;
}

export interface Reading {
  id: string;
  t: number;
  v: number | boolean | null;
  q?: 'stale' | 'bad';
  /** Outbox sequence number: required to encode with `outboxSeqs`, set by the decoder for version 2. */
  seq?: number;
}

export interface EncodeOptions {
  /** Version 2: carry every reading's `seq` (its outbox sequence number). */
  outboxSeqs?: boolean;
}

export interface DecodedMessage {
  version: number;
  seq: number;
  readings: Reading[];
}

export class MoCodec {
  readonly fingerprint: number;
  private readonly index = new Map<string, number>();

  constructor(readonly table: CodecTable) {
    if (!Number.isInteger(table.timeResolutionMs) || table.timeResolutionMs < 1) {
      throw new OutpostError('IRIDIUM_CODEC', 'timeResolutionMs must be a positive integer');
    }
    table.datapoints.forEach((dp, i) => {
      if (this.index.has(dp.id)) throw new OutpostError('IRIDIUM_CODEC', `datapoint ${dp.id} is listed twice in the codec table`);
      if (!Number.isInteger(dp.decimals) || dp.decimals < 0 || dp.decimals > 9) {
        throw new OutpostError('IRIDIUM_CODEC', `datapoint ${dp.id}: decimals must be 0..9`);
      }
      this.index.set(dp.id, i);
    });
    this.fingerprint = tableFingerprint(table);
  }

  has(id: string): boolean {
    return this.index.has(id);
  }

  /**
   * Whether `encode` takes this reading: a datapoint of the table, a value of its type
   * (or null for a stale/bad reading), measured after the codec epoch, within range.
   */
  carries(r: { id: string; t: number; v: unknown }): boolean {
    const i = this.index.get(r.id);
    if (i === undefined || !Number.isFinite(r.t) || r.t < CODEC_EPOCH_MS) return false;
    if (r.v === null) return true;
    const dp = this.table.datapoints[i]!;
    if (dp.type === 'boolean') return typeof r.v === 'boolean';
    if (typeof r.v !== 'number' || !Number.isFinite(r.v)) return false;
    const scaled = Math.round(r.v * 10 ** dp.decimals);
    return Number.isSafeInteger(scaled) && Math.abs(scaled) <= 2 ** 50;
  }

  /** Encodes all readings into one message; throws when it would exceed `maxBytes`. */
  encode(readings: readonly Reading[], seq: number, maxBytes = MAX_MO_BYTES, options: EncodeOptions = {}): Buffer {
    const bytes = this.encodeUnbounded(readings, seq, options);
    if (bytes.length > maxBytes) {
      throw new OutpostError('IRIDIUM_MO_SIZE', `${readings.length} readings need ${bytes.length} bytes, more than ${maxBytes}`);
    }
    return bytes;
  }

  /**
   * Takes as many readings (a prefix of `readings`, in the caller's priority order) as
   * fit in `maxBytes`. Returns the message and how many readings it holds.
   */
  packPrefix(readings: readonly Reading[], seq: number, maxBytes = MAX_MO_BYTES, options: EncodeOptions = {}): { bytes: Buffer; count: number } {
    if (readings.length === 0) throw new OutpostError('IRIDIUM_CODEC', 'nothing to encode');
    // A non-null reading takes at least one byte and a null one bit: no message holds more
    // than maxBytes × 8 readings. Grow the prefix exponentially, then binary-search the
    // boundary: the size grows (almost) monotonically with the prefix length.
    const limit = Math.min(readings.length, maxBytes * 8);
    let lo = 0;
    let best: Buffer | undefined;
    let hi = Math.min(limit, 32);
    for (;;) {
      const bytes = this.encodeUnbounded(readings.slice(0, hi), seq, options);
      if (bytes.length > maxBytes) {
        hi -= 1;
        break;
      }
      lo = hi;
      best = bytes;
      if (hi === limit) return { bytes, count: hi };
      hi = Math.min(limit, hi * 2);
    }
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      const bytes = this.encodeUnbounded(readings.slice(0, mid), seq, options);
      if (bytes.length <= maxBytes) {
        lo = mid;
        best = bytes;
      } else hi = mid - 1;
    }
    if (!best || lo === 0) throw new OutpostError('IRIDIUM_MO_SIZE', `a single reading does not fit in ${maxBytes} bytes`);
    return { bytes: best, count: lo };
  }

  private encodeUnbounded(readings: readonly Reading[], seq: number, options: EncodeOptions = {}): Buffer {
    if (readings.length === 0) throw new OutpostError('IRIDIUM_CODEC', 'nothing to encode');
    const res = this.table.timeResolutionMs;
    const series = new Map<number, Array<{ tq: number; r: Reading }>>();
    let base = Infinity;
    for (const r of readings) {
      const i = this.index.get(r.id);
      if (i === undefined) throw new OutpostError('IRIDIUM_CODEC', `datapoint ${r.id} is not in the Iridium codec table`);
      if (!Number.isFinite(r.t) || r.t < CODEC_EPOCH_MS) throw new OutpostError('IRIDIUM_CODEC', `${r.id}: timestamp ${r.t} is before 2020`);
      const tq = Math.round((r.t - CODEC_EPOCH_MS) / res);
      base = Math.min(base, tq);
      let list = series.get(i);
      if (!list) series.set(i, (list = []));
      list.push({ tq, r });
    }
    const ordered = [...series.entries()].sort((a, b) => a[0] - b[0]);
    // Stable sort: readings of one datapoint at the same time keep the caller's order.
    for (const [, list] of ordered) list.sort((a, b) => a.tq - b.tq);
    const w = new ByteWriter(400);
    w.byte(options.outboxSeqs ? CODEC_VERSION_SEQ : CODEC_VERSION)
      .byte(this.fingerprint >> 8)
      .byte(this.fingerprint & 0xff)
      .uvarint(seq)
      .uvarint(base);
    if (options.outboxSeqs)
      writeSeqs(
        w,
        ordered.flatMap(([, list]) => list.map((e) => e.r)),
      );
    for (const [i, list] of ordered) {
      const dp = this.table.datapoints[i]!;
      const hasNulls = list.some((e) => e.r.v === null);
      w.uvarint(i * 2 + (hasNulls ? 1 : 0))
        .uvarint(list.length - 1)
        .uvarint(list[0]!.tq - base);
      if (list.length > 1) {
        const runs: Array<[number, number]> = [];
        for (let k = 1; k < list.length; k++) {
          const d = list[k]!.tq - list[k - 1]!.tq;
          const last = runs[runs.length - 1];
          if (last && last[0] === d) last[1]++;
          else runs.push([d, 1]);
        }
        w.uvarint(runs.length);
        for (const [d, n] of runs) w.uvarint(d).uvarint(n - 1);
      }
      if (hasNulls) {
        const nullBits = bitmap(list.map((e) => e.r.v === null));
        const stale = bitmap(list.filter((e) => e.r.v === null).map((e) => e.r.q === 'stale'));
        w.bytes(nullBits).bytes(stale);
      }
      let prev: number | undefined;
      for (const { r } of list) {
        if (r.v === null) continue;
        const scaled = scale(dp, r);
        w.svarint(prev === undefined ? scaled : scaled - prev);
        prev = scaled;
      }
    }
    return w.toBuffer();
  }

  decode(bytes: Uint8Array): DecodedMessage {
    const r = new ByteReader(bytes);
    const version = r.byte();
    if (version !== CODEC_VERSION && version !== CODEC_VERSION_SEQ) throw new OutpostError('IRIDIUM_CODEC', `unsupported MO codec version ${version}`);
    const fp = (r.byte() << 8) | r.byte();
    if (fp !== this.fingerprint) {
      throw new OutpostError(
        'IRIDIUM_CODEC',
        `codec table fingerprint ${fp.toString(16)} does not match ${this.fingerprint.toString(16)}: the datapoint tables differ`,
      );
    }
    const seq = r.uvarint();
    const base = r.uvarint();
    const outboxSeqs = version === CODEC_VERSION_SEQ ? readSeqs(r, bytes.length) : undefined;
    const res = this.table.timeResolutionMs;
    const readings: Reading[] = [];
    while (r.remaining > 0) {
      const head = r.uvarint();
      const i = Math.floor(head / 2);
      const hasNulls = head % 2 === 1;
      const dp = this.table.datapoints[i];
      if (!dp) throw new OutpostError('IRIDIUM_CODEC', `unknown datapoint index ${i}`);
      const count = r.uvarint() + 1;
      if (count > bytes.length * 8) throw new OutpostError('IRIDIUM_CODEC', `implausible series length ${count}`);
      const times = [base + r.uvarint()];
      if (count > 1) {
        const runs = r.uvarint();
        for (let k = 0; k < runs; k++) {
          const d = r.uvarint();
          const n = r.uvarint() + 1;
          if (times.length + n > count) throw new OutpostError('IRIDIUM_CODEC', 'time runs exceed the series length');
          for (let j = 0; j < n; j++) times.push(times[times.length - 1]! + d);
        }
        if (times.length !== count) throw new OutpostError('IRIDIUM_CODEC', 'time runs do not cover the series');
      }
      let nulls: boolean[] = new Array<boolean>(count).fill(false);
      let stale: boolean[] = [];
      if (hasNulls) {
        nulls = readBitmap(r.bytes(Math.ceil(count / 8)), count);
        const nNull = nulls.filter(Boolean).length;
        stale = readBitmap(r.bytes(Math.ceil(nNull / 8)), nNull);
      }
      let prev: number | undefined;
      let nullIdx = 0;
      for (let k = 0; k < count; k++) {
        const t = CODEC_EPOCH_MS + times[k]! * res;
        if (nulls[k]) {
          readings.push({ id: dp.id, t, v: null, q: stale[nullIdx++] ? 'stale' : 'bad' });
          continue;
        }
        const raw: number = prev === undefined ? r.svarint() : prev + r.svarint();
        prev = raw;
        readings.push({ id: dp.id, t, v: unscale(dp, raw) });
      }
    }
    if (outboxSeqs) {
      if (outboxSeqs.length !== readings.length)
        throw new OutpostError('IRIDIUM_CODEC', `${outboxSeqs.length} sequence numbers for ${readings.length} readings`);
      readings.forEach((reading, k) => {
        reading.seq = outboxSeqs[k]!;
      });
    }
    return { version, seq, readings };
  }

  /** What a reading looks like after a round trip (rounded to the table's precision). */
  quantise(r: Reading): Reading {
    const dp = this.table.datapoints[this.index.get(r.id)!]!;
    const res = this.table.timeResolutionMs;
    const t = CODEC_EPOCH_MS + Math.round((r.t - CODEC_EPOCH_MS) / res) * res;
    if (r.v === null) return { id: r.id, t, v: null, q: r.q === 'stale' ? 'stale' : 'bad' };
    return { id: r.id, t, v: unscale(dp, scale(dp, r)) };
  }
}

function scale(dp: CodecDatapoint, r: Reading): number {
  if (dp.type === 'boolean') {
    if (typeof r.v !== 'boolean') throw new OutpostError('IRIDIUM_CODEC', `${dp.id}: expected a boolean, got ${typeof r.v}`);
    return r.v ? 1 : 0;
  }
  if (typeof r.v !== 'number' || !Number.isFinite(r.v)) throw new OutpostError('IRIDIUM_CODEC', `${dp.id}: expected a finite number`);
  const scaled = Math.round(r.v * 10 ** dp.decimals);
  if (!Number.isSafeInteger(scaled) || Math.abs(scaled) > 2 ** 50) {
    throw new OutpostError('IRIDIUM_CODEC', `${dp.id}: ${r.v} is too large for ${dp.decimals} decimals`);
  }
  return scaled;
}

function unscale(dp: CodecDatapoint, raw: number): number | boolean {
  if (dp.type === 'boolean') return raw !== 0;
  // Divide (not multiply by 10^-d) so that 0.1 decodes as 0.1, not 0.10000000000000002.
  return dp.decimals === 0 ? raw : raw / 10 ** dp.decimals;
}

/** Version 2 sequence section: count, first, run-length encoded signed deltas. */
function writeSeqs(w: ByteWriter, readings: readonly Reading[]): void {
  const seqs = readings.map((r) => {
    if (r.seq === undefined || !Number.isSafeInteger(r.seq) || r.seq < 0)
      throw new OutpostError('IRIDIUM_CODEC', `${r.id}: an outbox sequence number is required (got ${r.seq})`);
    return r.seq;
  });
  w.uvarint(seqs.length).uvarint(seqs[0]!);
  if (seqs.length === 1) return;
  const runs: Array<[number, number]> = [];
  for (let k = 1; k < seqs.length; k++) {
    const d = seqs[k]! - seqs[k - 1]!;
    const last = runs[runs.length - 1];
    if (last && last[0] === d) last[1]++;
    else runs.push([d, 1]);
  }
  w.uvarint(runs.length);
  for (const [d, n] of runs) w.svarint(d).uvarint(n - 1);
}

function readSeqs(r: ByteReader, messageBytes: number): number[] {
  const n = r.uvarint();
  if (n < 1 || n > messageBytes * 8) throw new OutpostError('IRIDIUM_CODEC', `implausible reading count ${n}`);
  const seqs = [r.uvarint()];
  if (n > 1) {
    const runs = r.uvarint();
    for (let k = 0; k < runs; k++) {
      const d = r.svarint();
      const len = r.uvarint() + 1;
      if (seqs.length + len > n) throw new OutpostError('IRIDIUM_CODEC', 'sequence runs exceed the reading count');
      for (let j = 0; j < len; j++) seqs.push(seqs[seqs.length - 1]! + d);
    }
    if (seqs.length !== n) throw new OutpostError('IRIDIUM_CODEC', 'sequence runs do not cover the readings');
  }
  if (seqs.some((s) => s < 0 || !Number.isSafeInteger(s))) throw new OutpostError('IRIDIUM_CODEC', 'negative outbox sequence number');
  return seqs;
}

function bitmap(bits: boolean[]): Uint8Array {
  const out = new Uint8Array(Math.ceil(bits.length / 8));
  bits.forEach((b, i) => {
    if (b) out[i >> 3]! |= 1 << (i & 7);
  });
  return out;
}

function readBitmap(bytes: Uint8Array, n: number): boolean[] {
  const out: boolean[] = [];
  for (let i = 0; i < n; i++) out.push(((bytes[i >> 3]! >> (i & 7)) & 1) === 1);
  return out;
}

function tableFingerprint(table: CodecTable): number {
  const h = createHash('sha256')
    .update(JSON.stringify([table.timeResolutionMs, table.datapoints.map((d) => [d.id, d.decimals, d.type])]))
    .digest();
  return (h[0]! << 8) | h[1]!;
}

/** Credits billed for a message of `bytes` (at least one: a mailbox check is billed too). */
export function creditsFor(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / CREDIT_BYTES));
}

/** Decoder for the central side: the same table the site uses. */
export function decodeMoMessage(table: CodecTable, bytes: Uint8Array): DecodedMessage {
  return new MoCodec(table).decode(bytes);
}
