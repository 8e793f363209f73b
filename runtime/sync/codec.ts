import { gzip, gunzipSync, constants as zlibConstants } from 'node:zlib';
import { promisify } from 'node:util';
import { OutpostError } from '../../core/errors.js';
import type { OutboxRecord } from '../../storage/store.js';
import type { Batch } from './link.js';

const gzipAsync = promisify(gzip);

/** Wire format version of JSON batches; bump on any incompatible change. */
export const BATCH_FORMAT = 1;

/**
 * JSON batch as it travels (before gzip). Records are positional arrays
 * `[seq, id, t, v]` or `[seq, id, t, v, q]`: a third of the size of objects.
 */
export interface WireBatch {
  format: typeof BATCH_FORMAT;
  gw: string;
  key: string;
  first: number;
  last: number;
  lane: Batch['lane'];
  records: Array<[number, string, number, OutboxRecord['v'], ('stale' | 'bad')?]>;
}

export function batchToJson(batch: Batch): string {
  const records = batch.records.map((r) => (r.q ? [r.seq, r.id, r.t, r.v, r.q] : [r.seq, r.id, r.t, r.v]));
  return JSON.stringify({ format: BATCH_FORMAT, gw: batch.gatewayId, key: batch.key, first: batch.first, last: batch.last, lane: batch.lane, records });
}

/** gzip in libuv's thread pool, so compression of one batch overlaps the I/O of others. */
export async function encodeBatch(batch: Batch, level = 1): Promise<Buffer> {
  return gzipAsync(Buffer.from(batchToJson(batch)), { level, strategy: zlibConstants.Z_DEFAULT_STRATEGY });
}

/** Decodes a batch (gzip or plain JSON) — the receiver's half, used by tests and the central side. */
export function decodeBatch(payload: Buffer): WireBatch {
  let text: string;
  try {
    text = (payload[0] === 0x1f && payload[1] === 0x8b ? gunzipSync(payload) : payload).toString('utf8');
  } catch (err) {
    throw new OutpostError('VALUE_MALFORMED', `batch is not valid gzip: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new OutpostError('VALUE_MALFORMED', 'batch is not JSON', { cause: err });
  }
  const b = parsed as Partial<WireBatch>;
  if (
    b === null ||
    typeof b !== 'object' ||
    b.format !== BATCH_FORMAT ||
    typeof b.gw !== 'string' ||
    typeof b.key !== 'string' ||
    !Number.isSafeInteger(b.first) ||
    !Number.isSafeInteger(b.last) ||
    !Array.isArray(b.records)
  ) {
    throw new OutpostError('VALUE_MALFORMED', `batch does not have the format ${BATCH_FORMAT} shape {format, gw, key, first, last, lane, records}`);
  }
  return b as WireBatch;
}

export function wireRecords(b: WireBatch): OutboxRecord[] {
  return b.records.map(([seq, id, t, v, q]) => (q ? { seq, id, t, v, q } : { seq, id, t, v }));
}

/**
 * Receiver-side duplicate filter: remembers, per gateway, the outbox sequence numbers
 * already stored as merged ranges, so at-least-once delivery (retries, restarts,
 * satellite + backfill) stores every record once. Memory is O(gaps), not O(records).
 */
export class SeqDeduper {
  private readonly seen = new Map<string, Array<[number, number]>>();

  /** Returns the records of the batch not seen before and marks them seen. */
  accept(gatewayId: string, records: readonly OutboxRecord[]): OutboxRecord[] {
    let ranges = this.seen.get(gatewayId);
    if (!ranges) this.seen.set(gatewayId, (ranges = []));
    const fresh: OutboxRecord[] = [];
    for (const r of records) {
      if (this.has(ranges, r.seq)) continue;
      this.add(ranges, r.seq);
      fresh.push(r);
    }
    return fresh;
  }

  ranges(gatewayId: string): ReadonlyArray<readonly [number, number]> {
    return this.seen.get(gatewayId) ?? [];
  }

  private index(ranges: Array<[number, number]>, seq: number): number {
    // First range whose end is >= seq - 1 (binary search).
    let lo = 0;
    let hi = ranges.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ranges[mid]![1] < seq - 1) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private has(ranges: Array<[number, number]>, seq: number): boolean {
    const i = this.index(ranges, seq);
    const r = ranges[i];
    return r !== undefined && r[0] <= seq && seq <= r[1];
  }

  private add(ranges: Array<[number, number]>, seq: number): void {
    const i = this.index(ranges, seq);
    const r = ranges[i];
    if (r === undefined || seq < r[0] - 1) {
      ranges.splice(i, 0, [seq, seq]);
      return;
    }
    if (seq === r[0] - 1) r[0] = seq;
    else if (seq === r[1] + 1) {
      r[1] = seq;
      const next = ranges[i + 1];
      if (next && next[0] === seq + 1) {
        r[1] = next[1];
        ranges.splice(i + 1, 1);
      }
    }
  }
}
