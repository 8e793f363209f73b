import { OutpostError } from '../../core/errors.js';
import { DATAPOINT_ID, type Value } from '../../core/datapoint.js';
import type { WireBatch } from '../../runtime/sync/codec.js';
import { type RecordColumns, RecordColumnsBuilder } from '../store/record-columns.js';
import '../errors.js';

/** Largest time a stored key holds (storage/level/db.ts MAX_TIME); epoch ms fit until year 33658. */
export const MAX_TIME = 999_999_999_999_999;
/** A string or JSON value longer than this (serialised) is refused: the gateway bounds them far lower (core/datapoint.ts). */
const MAX_VALUE_CHARS = 64 * 1024;

/** A record refused, and why: the answer names it so the gateway's link can set it aside. */
export interface RefusedRecord {
  /** Position in the batch. */
  index: number;
  seq?: number;
  reason: string;
}

export interface CheckedBatch {
  /** The records that may be stored, as columns: the batch's JSON is garbage as soon as this returns. */
  records: RecordColumns;
  refused: RefusedRecord[];
}

/**
 * Checks the records of a decoded batch (`[seq, id, t, v]` or `[seq, id, t, v, q]`,
 * runtime/sync/codec.ts). `strict` (the HTTP link): one bad record refuses the batch with
 * CENTRAL_RECORD_INVALID naming it — the link then splits the batch to find it and sets it
 * aside in its dead-letter store, and sends the rest. Not strict (MQTT, which has no
 * per-message refusal): bad records are left out and returned in `refused`, the rest stored.
 */
export function checkRecords(batch: WireBatch, strict: boolean): CheckedBatch {
  const records = new RecordColumnsBuilder(batch.records.length);
  const refused: RefusedRecord[] = [];
  batch.records.forEach((raw: unknown, index) => {
    const reason = problem(raw);
    if (reason === undefined) {
      const [seq, id, t, v, q] = raw as [number, string, number, Value, ('stale' | 'bad')?];
      records.push(seq, id, t, v, q);
      return;
    }
    const seq = Array.isArray(raw) && Number.isSafeInteger(raw[0]) ? (raw[0] as number) : undefined;
    refused.push(seq === undefined ? { index, reason } : { index, seq, reason });
  });
  if (strict && refused.length > 0) {
    const first = refused[0]!;
    throw new OutpostError(
      'CENTRAL_RECORD_INVALID',
      `batch ${batch.key}: record ${first.index}${first.seq !== undefined ? ` (seq ${first.seq})` : ''}: ${first.reason}${refused.length > 1 ? ` (and ${refused.length - 1} more)` : ''}`,
      { details: { refused: refused.slice(0, 20) } },
    );
  }
  return { records: records.build(), refused };
}

/** Why a wire record cannot be stored, or undefined when it can. */
function problem(raw: unknown): string | undefined {
  if (!Array.isArray(raw) || raw.length < 4 || raw.length > 5) return 'expected [seq, id, t, v] or [seq, id, t, v, q]';
  const [seq, id, t, v, q] = raw as unknown[];
  if (!Number.isSafeInteger(seq) || (seq as number) < 0) return 'seq must be a non-negative integer';
  if (typeof id !== 'string' || !DATAPOINT_ID.test(id)) return `datapoint id ${JSON.stringify(id)?.slice(0, 80)} is not [a-z0-9_.-]{1,128}`;
  if (!Number.isSafeInteger(t) || (t as number) < 0 || (t as number) > MAX_TIME) return `t ${JSON.stringify(t)?.slice(0, 40)} is not epoch milliseconds`;
  if (q !== undefined && q !== 'stale' && q !== 'bad') return `q must be "stale" or "bad", got ${JSON.stringify(q)?.slice(0, 40)}`;
  if (typeof v === 'number' && !Number.isFinite(v)) return 'v is not a finite number';
  if (typeof v === 'string' && v.length > MAX_VALUE_CHARS) return `v is a string of more than ${MAX_VALUE_CHARS} characters`;
  if (typeof v === 'object' && v !== null && JSON.stringify(v).length > MAX_VALUE_CHARS) return `v is JSON of more than ${MAX_VALUE_CHARS} characters`;
  // PostgreSQL's text and jsonb cannot hold U+0000 (docs, "JSON Types"): refused here with a reason,
  // in every store alike, rather than failing the database's transaction on every redelivery.
  if (holdsNul(v)) return 'v holds the character U+0000 (NUL), which the store cannot keep';
  if (v === undefined) return 'v is missing';
  return undefined;
}

/** Whether a string of the value (or a key of its objects) holds U+0000. */
function holdsNul(v: unknown): boolean {
  if (typeof v === 'string') return v.includes('\u0000');
  if (Array.isArray(v)) return v.some(holdsNul);
  if (typeof v === 'object' && v !== null) return Object.entries(v).some(([k, x]) => k.includes('\u0000') || holdsNul(x));
  return false;
}

/** The gateway id an idempotency key names (`<gatewayId>:<first>-<last>`, or `<gatewayId>:p…` for priority batches). */
export function gatewayOfKey(key: string | undefined): string | undefined {
  if (!key) return undefined;
  const colon = key.indexOf(':');
  return colon > 0 ? key.slice(0, colon) : undefined;
}
