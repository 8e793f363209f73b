import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import type { PoolClient } from './db.js';

/**
 * `COPY … FROM STDIN` in text format (PostgreSQL docs, "COPY", File Formats: Text Format):
 * columns split by a tab, rows by a newline, `\N` for NULL, and a backslash, tab, newline or
 * carriage return inside a value written as a backslash sequence. COPY writes rows in batches
 * (a WAL record per page rather than per row) and skips the executor's per-row work that an
 * `INSERT … SELECT unnest(…)` pays: the insert path's bulk rows go this way.
 */
export const COPY_NULL = '\\N';

const SPECIAL = /[\\\t\n\r]/;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** A text value as one COPY field (null: `\N`). */
export function copyField(value: string | null): string {
  if (value === null) return COPY_NULL;
  return SPECIAL.test(value) ? value.replace(/[\\\t\n\r]/g, (ch) => ESCAPES[ch]!) : value;
}

/** Epoch ms as a `timestamptz` field: ISO 8601 in UTC, which COPY reads exactly (to the ms). */
export const copyTime = (ms: number): string => new Date(ms).toISOString();

/**
 * From year 10000 on `toISOString` writes `+010000-01-01T…`, whose leading `+` PostgreSQL reads
 * as a time zone: such times (the contract allows them) go as parameters, not through COPY.
 */
export const COPY_TIME_LIMIT = Date.UTC(10000, 0, 1);

/** Rows are sent in pieces of about this many characters: memory per COPY stays small. */
const PIECE_CHARS = 64 * 1024;

/**
 * Streams `lines` (each a whole row ending in a newline) into `COPY <target> FROM STDIN` on
 * the caller's connection, inside its transaction. A row COPY refuses (a duplicate key, no
 * partition) fails the whole COPY with PostgreSQL's error and code, as an INSERT would.
 */
export async function copyLines(c: PoolClient, target: string, lines: Iterable<string>): Promise<void> {
  await pipeline(Readable.from(pieces(lines)), c.query(copyFrom(`COPY ${target} FROM STDIN`)));
}

function* pieces(lines: Iterable<string>): Generator<string> {
  let piece = '';
  for (const line of lines) {
    piece += line;
    if (piece.length >= PIECE_CHARS) {
      yield piece;
      piece = '';
    }
  }
  if (piece.length > 0) yield piece;
}
