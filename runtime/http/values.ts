import express, { type Request } from 'express';
import { OutpostError } from '../../core/errors.js';
import type { Clock } from '../../core/clock.js';
import type { Datapoint } from '../../core/datapoint.js';
import type { Store } from '../../storage/store.js';
import { DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT } from '../../storage/store.js';
import { MAX_AGGREGATE_INTERVALS, parseAggregation, parseInterval } from '../../storage/rollups.js';
import { intParam, timeParam } from '../../core/http-params.js';

export interface ValuesRoutesDeps {
  store: Store;
  /** Looks a datapoint up (the registry's `get`). */
  datapoint: (id: string) => Datapoint | undefined;
  clock: Clock;
}

/**
 * `GET /api/datapoints/:id/values?from&to`: one handler for both readings of the URL.
 * - without `interval`: raw values (`limit`, `order=asc|desc`), `truncated` when `limit` was reached;
 * - with `interval=15m&agg=avg`: aggregates from the rollups (BEMCom's `interval` parameter).
 * `from`/`to` are epoch ms or ISO dates; the default range is the last 24 hours.
 */
export function valuesRoutes(deps: ValuesRoutesDeps): express.Router {
  const r = express.Router();
  r.get('/api/datapoints/:id/values', async (req, res) => {
    const dp = deps.datapoint(req.params.id);
    if (!dp) throw new OutpostError('DP_UNKNOWN', `unknown datapoint "${req.params.id}"`);
    const to = timeParam(req, 'to') ?? deps.clock.now();
    const from = timeParam(req, 'from') ?? to - 24 * 3600 * 1000;
    if (req.query.interval === undefined) {
      if (from > to) throw new OutpostError('BAD_REQUEST', '"from" is after "to"');
      const limit = intParam(req, 'limit', MAX_QUERY_LIMIT) ?? DEFAULT_QUERY_LIMIT;
      const order = req.query.order === 'desc' ? 'desc' : 'asc';
      const values = await deps.store.query(dp.id, { from, to, limit, order });
      res.json({ id: dp.id, unit: dp.unit, from, to, count: values.length, truncated: values.length === limit, values });
      return;
    }
    const { interval, agg } = aggregation(req);
    if (from > to) throw new OutpostError('BAD_REQUEST', '"from" is after "to"');
    if ((to - from) / interval > MAX_AGGREGATE_INTERVALS) {
      throw new OutpostError('BAD_REQUEST', `at most ${MAX_AGGREGATE_INTERVALS} intervals per request: use a longer interval or a shorter range`);
    }
    const values = await deps.store.queryAggregate(dp.id, { from, to, interval, agg });
    res.json({ id: dp.id, unit: dp.unit, from, to, interval, agg, count: values.length, values });
  });
  return r;
}

function aggregation(req: Request): { interval: number; agg: ReturnType<typeof parseAggregation> } {
  if (typeof req.query.interval !== 'string') throw new OutpostError('BAD_REQUEST', '"interval" must be given once');
  return { interval: parseInterval(req.query.interval), agg: parseAggregation(req.query.agg) };
}
