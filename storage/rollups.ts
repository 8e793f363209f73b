import { OutpostError } from '../core/errors.js';
// Rollup math only: the Store contract (store.ts) uses these types, not the other way round.
import type { Value } from '../core/datapoint.js';

/**
 * Rollups: per datapoint and resolution, one aggregate per time bucket (UTC-aligned,
 * epoch multiples of the resolution). They let a year-long chart read 35,040 buckets
 * (15 min) or 365 (1 d) instead of 31 million raw points.
 *
 * Only numeric readings count (booleans as 0/1, so a rollup of a pump state is its duty
 * cycle); strings, JSON and missing readings (`v: null`) are kept raw only.
 */
export const RESOLUTIONS = [
  { name: '1m', ms: 60_000 },
  { name: '15m', ms: 15 * 60_000 },
  { name: '1h', ms: 3_600_000 },
  { name: '1d', ms: 86_400_000 },
] as const;

export type ResolutionName = (typeof RESOLUTIONS)[number]['name'];
export type Resolution = (typeof RESOLUTIONS)[number];

export const AGGREGATIONS = ['avg', 'min', 'max', 'sum', 'first', 'last', 'count', 'delta'] as const;
export type Aggregation = (typeof AGGREGATIONS)[number];

/**
 * Aggregate of the numeric readings in one time range. `first`/`last` are by measurement
 * time, not arrival. `inc` is the counter increase between the first and last reading
 * inside the range, counting a drop as a reset to zero (what `delta` needs).
 */
export interface Agg {
  count: number;
  sum: number;
  min: number;
  max: number;
  ft: number;
  fv: number;
  lt: number;
  lv: number;
  inc: number;
}

export interface AggregateQuery {
  /** Inclusive, epoch ms; aligned down to the interval. */
  from: number;
  /** Inclusive, epoch ms. */
  to: number;
  /** Interval length in ms: a whole number of minutes. */
  interval: number;
  agg: Aggregation;
  /** Most intervals returned (default and cap MAX_AGGREGATE_INTERVALS). */
  limit?: number;
}

/** One interval of an aggregated query; empty intervals are left out. */
export interface AggregatePoint {
  /** Start of the interval, epoch ms. */
  t: number;
  v: number;
  /** Readings that went into it. */
  count: number;
}

export const MAX_AGGREGATE_INTERVALS = 100_000;

/** The reading as a number for rollups, or undefined when it does not count. */
export function numericValue(p: { v: Value }): number | undefined {
  if (typeof p.v === 'number') return Number.isFinite(p.v) ? p.v : undefined;
  if (typeof p.v === 'boolean') return p.v ? 1 : 0;
  return undefined;
}

/** Counter increase from `prev` to `cur`: a drop means the counter was reset and counted up from 0 to `cur`. */
export function counterStep(prev: number, cur: number): number {
  return cur >= prev ? cur - prev : cur;
}

export function bucketStart(t: number, ms: number): number {
  return Math.floor(t / ms) * ms;
}

export function singleAgg(t: number, v: number): Agg {
  return { count: 1, sum: v, min: v, max: v, ft: t, fv: v, lt: t, lv: v, inc: 0 };
}

/** A numeric reading: what a bucket holding only it aggregates to. */
export interface Reading {
  t: number;
  v: number;
}

/**
 * A bucket as the append path hands it to the chunk encoder: its aggregate, or its one
 * reading when it holds only that (the stored point itself). An aggregate is nine doubles,
 * each a heap number in V8: bulk imports of 5-15 min trend data make every 1 min and 15 min
 * bucket a single reading, and allocating an aggregate for each was most of their memory
 * churn. Cached and decoded buckets are always aggregates.
 */
export type RollupEntry = Agg | Reading;

export function isAgg(e: RollupEntry): e is Agg {
  return (e as Agg).count !== undefined;
}

export function toAgg(e: RollupEntry): Agg {
  return isAgg(e) ? e : singleAgg(e.t, e.v);
}

/** Adds a reading later than `a.lt` to `a`, in place: mergeOrdered(a, singleAgg(t, v)) without allocating. */
export function appendReading(a: Agg, t: number, v: number): void {
  a.count++;
  a.sum += v;
  if (v < a.min) a.min = v;
  if (v > a.max) a.max = v;
  a.inc += counterStep(a.lv, v);
  a.lt = t;
  a.lv = v;
}

/** Merges two aggregates of disjoint time ranges, `a` entirely before `b`. */
export function mergeOrdered(a: Agg | undefined, b: Agg): Agg {
  if (!a) return { ...b };
  return {
    count: a.count + b.count,
    sum: a.sum + b.sum,
    min: Math.min(a.min, b.min),
    max: Math.max(a.max, b.max),
    ft: a.ft,
    fv: a.fv,
    lt: b.lt,
    lv: b.lv,
    inc: a.inc + b.inc + counterStep(a.lv, b.fv),
  };
}

/** Folds time-ordered numeric readings into one aggregate. */
export function aggregatePoints(points: Iterable<{ t: number; v: number }>): Agg | undefined {
  let acc: Agg | undefined;
  for (const p of points) acc = mergeOrdered(acc, singleAgg(p.t, p.v));
  return acc;
}

/**
 * Rollup values on disk: a marker character `\u0001` then the nine fields as IEEE 754
 * doubles, little-endian, one character (0-255) per byte. Formatting nine doubles as
 * decimal text was the largest single cost of ingest and of year-long queries. Values
 * written by earlier versions are JSON arrays (`[count, sum, …]`) and still read.
 */
const AGG_MARK = 1;
const AGG_FIELDS = 9;
const aggScratch = new DataView(new ArrayBuffer(AGG_FIELDS * 8));
const aggBytes = new Uint8Array(aggScratch.buffer);
/** Encoding scratch: the marker, then the doubles (Buffer's latin1Slice turns it into the string in one native call). */
const aggOut = Buffer.alloc(1 + AGG_FIELDS * 8);
aggOut[0] = AGG_MARK;

export function encodeAgg(a: Agg): string {
  const b = aggOut;
  b.writeDoubleLE(a.count, 1);
  b.writeDoubleLE(a.sum, 9);
  b.writeDoubleLE(a.min, 17);
  b.writeDoubleLE(a.max, 25);
  b.writeDoubleLE(a.ft, 33);
  b.writeDoubleLE(a.fv, 41);
  b.writeDoubleLE(a.lt, 49);
  b.writeDoubleLE(a.lv, 57);
  b.writeDoubleLE(a.inc, 65);
  return b.toString('latin1');
}

export function decodeAgg(raw: string): Agg {
  if (raw.charCodeAt(0) === AGG_MARK && raw.length === AGG_FIELDS * 8 + 1) {
    for (let i = 0; i < AGG_FIELDS * 8; i++) aggBytes[i] = raw.charCodeAt(i + 1);
    const d = aggScratch;
    return {
      count: d.getFloat64(0, true),
      sum: d.getFloat64(8, true),
      min: d.getFloat64(16, true),
      max: d.getFloat64(24, true),
      ft: d.getFloat64(32, true),
      fv: d.getFloat64(40, true),
      lt: d.getFloat64(48, true),
      lv: d.getFloat64(56, true),
      inc: d.getFloat64(64, true),
    };
  }
  const [count, sum, min, max, ft, fv, lt, lv, inc] = JSON.parse(raw) as number[];
  return { count: count!, sum: sum!, min: min!, max: max!, ft: ft!, fv: fv!, lt: lt!, lv: lv!, inc: inc! };
}

/** The coarsest resolution whose buckets tile the interval exactly. */
export function bestResolution(interval: number): Resolution {
  let best: Resolution | undefined;
  for (const r of RESOLUTIONS) if (interval % r.ms === 0) best = r;
  if (!best) throw new OutpostError('BAD_REQUEST', `interval must be a whole number of minutes, got ${interval} ms`);
  return best;
}

/** Parses `15m`, `1h`, `1d`, `90s`, `2w` or plain milliseconds into ms; intervals are whole minutes. */
export function parseInterval(raw: string): number {
  const m = /^(\d+)(ms|s|m|h|d|w)?$/.exec(raw.trim());
  if (!m) throw new OutpostError('BAD_REQUEST', `"interval" must look like 15m, 1h, 1d or 7d, got "${raw}"`);
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 }[m[2] ?? 'ms']!;
  const ms = n * unit;
  if (!Number.isSafeInteger(ms) || ms < 60_000 || ms % 60_000 !== 0) {
    throw new OutpostError('BAD_REQUEST', `"interval" must be a whole number of minutes (rollups start at 1 min), got "${raw}"`);
  }
  return ms;
}

export function parseAggregation(raw: unknown): Aggregation {
  if (raw === undefined || raw === '') return 'avg';
  if (typeof raw === 'string' && (AGGREGATIONS as readonly string[]).includes(raw)) return raw as Aggregation;
  throw new OutpostError('BAD_REQUEST', `"agg" must be one of ${AGGREGATIONS.join(', ')}, got "${String(raw)}"`);
}

export function validateAggregateQuery(q: AggregateQuery): void {
  if (!Number.isFinite(q.from) || !Number.isFinite(q.to)) throw new OutpostError('BAD_REQUEST', '"from" and "to" must be epoch milliseconds');
  if (q.from > q.to) throw new OutpostError('BAD_REQUEST', '"from" is after "to"');
  if (!Number.isSafeInteger(q.interval) || q.interval < 60_000 || q.interval % 60_000 !== 0) {
    throw new OutpostError('BAD_REQUEST', `"interval" must be a whole number of minutes, got ${q.interval} ms`);
  }
  if (!(AGGREGATIONS as readonly string[]).includes(q.agg)) throw new OutpostError('BAD_REQUEST', `"agg" must be one of ${AGGREGATIONS.join(', ')}`);
}

/**
 * Turns per-interval aggregates (ascending, non-empty) into the requested figure.
 * `before` is the aggregate just before the first interval (for `delta`: the counter
 * reading the first interval's consumption is measured from).
 */
export function finalize(intervals: ReadonlyArray<{ t: number; agg: Agg }>, kind: Aggregation, before: Agg | undefined): AggregatePoint[] {
  const out: AggregatePoint[] = [];
  let prev = before;
  for (const { t, agg } of intervals) {
    let v: number;
    switch (kind) {
      case 'avg':
        v = agg.sum / agg.count;
        break;
      case 'min':
        v = agg.min;
        break;
      case 'max':
        v = agg.max;
        break;
      case 'sum':
        v = agg.sum;
        break;
      case 'first':
        v = agg.fv;
        break;
      case 'last':
        v = agg.lv;
        break;
      case 'count':
        v = agg.count;
        break;
      case 'delta':
        // Consumption in this interval: the step from the previous reading into it, plus
        // the increase inside it (both reset-aware).
        v = agg.inc + (prev ? counterStep(prev.lv, agg.fv) : 0);
        break;
    }
    out.push({ t, v, count: agg.count });
    prev = agg;
  }
  return out;
}
