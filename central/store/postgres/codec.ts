import type { Value } from '../../../core/datapoint.js';
import type { StoredValue } from '../contract.js';

/**
 * A reading's value in two columns: `v float8` for numbers (what rollups read, 8 bytes, no
 * parsing), `j jsonb` for every other value (booleans, strings, objects); both NULL for a
 * missing value (`v: null`, a bad reading). jsonb keeps the value, not its text: object keys
 * come back in jsonb's order (by length, then bytes), which no reader of a JSON object may
 * depend on.
 */
export interface EncodedValue {
  v: number | null;
  j: string | null;
}

export function encodeValue(value: Value): EncodedValue {
  if (typeof value === 'number') return { v: value, j: null };
  if (value === null || value === undefined) return { v: null, j: null };
  return { v: null, j: JSON.stringify(value) };
}

/** A row's `t` (epoch ms, from `round(date_part('epoch', t) * 1000)`), `v`, `j` (parsed by node-postgres) and `q`. */
export interface ValueRow {
  t: number;
  v: number | null;
  j: Value | null;
  q: string | null;
}

export function decodeValue(row: ValueRow): StoredValue {
  const value: Value = row.v !== null ? row.v : row.j;
  return row.q === 'stale' || row.q === 'bad' ? { t: row.t, v: value, q: row.q } : { t: row.t, v: value };
}

/** Epoch ms as a JS number from a float8 column; a bigint column (count, seq) arrives as text. */
export const num = (x: string | number | null | undefined): number => (x === null || x === undefined ? 0 : Number(x));
