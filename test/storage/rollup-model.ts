/**
 * A plain model of rollups for storage tests: the aggregates of readings per interval,
 * computed from the readings alone, and the first place where a store's rollups differ.
 */
import type { LevelStore } from '../../storage/level/level-store.js';
import type { StoredValue } from '../../storage/store.js';

const MIN = 60_000;
const DAY = 86_400_000;

type ModelAgg = Record<'count' | 'sum' | 'min' | 'max' | 'first' | 'last' | 'delta', number>;

/**
 * Count, sum, min, max, first, last and delta (counter increase: each reading's step from the
 * reading before it, a drop counting as a reset to zero) of the numeric readings per bucket of
 * `interval`, as a plain model.
 */
export function modelAggregates(points: readonly StoredValue[], interval: number): Map<number, ModelAgg> {
  const out = new Map<number, ModelAgg>();
  let previous: number | undefined;
  for (const p of [...points].sort((a, b) => a.t - b.t)) {
    const v = typeof p.v === 'number' ? p.v : typeof p.v === 'boolean' ? Number(p.v) : undefined;
    if (v === undefined) continue;
    const step = previous === undefined ? 0 : v >= previous ? v - previous : v;
    previous = v;
    const bucket = Math.floor(p.t / interval) * interval;
    const a = out.get(bucket);
    if (!a) out.set(bucket, { count: 1, sum: v, min: v, max: v, first: v, last: v, delta: step });
    else {
      a.count++;
      a.sum += v;
      a.min = Math.min(a.min, v);
      a.max = Math.max(a.max, v);
      a.last = v;
      a.delta += step;
    }
  }
  return out;
}

/** The first aggregate (by interval and kind) where the store differs from the model, or undefined. */
export async function aggregateMismatch(store: LevelStore, id: string, points: readonly StoredValue[], from: number, to: number): Promise<string | undefined> {
  for (const interval of [MIN, 15 * MIN, 60 * MIN, DAY]) {
    const want = modelAggregates(points, interval);
    for (const agg of ['count', 'sum', 'min', 'max', 'first', 'last', 'delta'] as const) {
      const got = await store.queryAggregate(id, { from, to, interval, agg });
      if (got.length !== want.size) return `${id} ${agg} per ${interval / MIN} min: ${got.length} buckets, model ${want.size}`;
      for (const g of got) {
        const w = want.get(g.t)?.[agg];
        if (w === undefined || Math.abs(g.v - w) > 1e-6 * Math.max(1, Math.abs(w)))
          return `${id} ${agg} per ${interval / MIN} min at ${new Date(g.t).toISOString()}: ${g.v}, model ${w}`;
      }
    }
  }
  return undefined;
}
