/**
 * LevelDB key layout. Every read is a range scan over one prefix:
 *   p!<datapoint>!<t>    raw point chunks (storage/level/chunks.ts), keyed by their first reading's time
 *   o!<seq>              the outbox, ordered by global sequence number
 *   m!<datapoint>        datapoint metadata
 *   x!seq                the outbox high-water mark, so numbers are never reused after a drain
 * Rollup chunks (`r!<res>!<datapoint>!<bucket>`) and broker state (`b!...`) take further prefixes.
 * `!` sorts below every character allowed in a datapoint id ([a-z0-9_.-]), so the
 * range of `a` never contains `a.b`.
 */
const T_WIDTH = 15; // epoch ms fits in 13 digits until year 2286; 15 leaves room.
const SEQ_WIDTH = 16;

export const HIGH = '\xff';

export function pointKey(id: string, t: number): string {
  return `p!${id}!${String(t).padStart(T_WIDTH, '0')}`;
}

export function pointPrefix(id: string): string {
  return `p!${id}!`;
}

export function pointTime(key: string): number {
  return Number(key.slice(key.length - T_WIDTH));
}

export function outboxKey(seq: number): string {
  return `o!${seq.toString(16).padStart(SEQ_WIDTH, '0')}`;
}

export function outboxSeq(key: string): number {
  return parseInt(key.slice(2), 16);
}

export function metaKey(id: string): string {
  return `m!${id}`;
}

export const SEQ_KEY = 'x!seq';

/** Highest outbox sequence acknowledged upstream; records up to it are deleted. */
export const ACKED_KEY = 'x!acked';

/** Rollup bucket of one datapoint: `r!<res>!<datapoint>!<bucket start>`. */
export function rollupKey(res: string, id: string, bucket: number): string {
  return `r!${res}!${id}!${String(bucket).padStart(T_WIDTH, '0')}`;
}

export function rollupPrefix(res: string, id: string): string {
  return `r!${res}!${id}!`;
}

/** Key prefixes that hold time series data (what backup and retention work on). */
export const PREFIX = { point: 'p!', outbox: 'o!', meta: 'm!', rollup: 'r!', state: 'x!', broker: 'b!' } as const;
