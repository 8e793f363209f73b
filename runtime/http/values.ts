import express, { type Request } from 'express';
import { OutpostError } from '../../core/errors.js';
import type { Clock } from '../../core/clock.js';
import type { Datapoint } from '../../core/datapoint.js';
import type { Store } from '../../storage/store.js';
import { MAX_AGGREGATE_INTERVALS, parseAggregation, parseInterval } from '../../storage/rollups.js';
import { timeParam } from './params.js';

export interface StorageRoutesDeps {
  store: Store;
  /** Looks a datapoint up (the registry's `get`). */
  datapoint: (id: string) => Datapoint | undefined;
  clock: Clock;
}

/**
 * `GET /api/datapoints/:id/values?interval=15m&agg=avg&from&to`: aggregated values from
 * the rollups (BEMCom's `interval` parameter). Without `interval` the request falls
 * through (next()) to the raw-values route, so mount this router before it.
 */
export function storageRoutes(deps: StorageRoutesDeps): express.Router {
  const r = express.Router();
  r.get('/api/datapoints/:id/values', async (req, res, next) => {
    if (req.query.interval === undefined) return next();
    const dp = deps.datapoint(req.params.id);
    if (!dp) throw new OutpostError('DP_UNKNOWN', `unknown datapoint "${req.params.id}"`);
    if (typeof req.query.interval !== 'string') throw new OutpostError('BAD_REQUEST', '"interval" must be given once');
    const interval = parseInterval(req.query.interval);
    const agg = parseAggregation(req.query.agg);
    const to = timeParam(req, 'to') ?? deps.clock.now();
    const from = timeParam(req, 'from') ?? to - 24 * 3600 * 1000;
    if (from > to) throw new OutpostError('BAD_REQUEST', '"from" is after "to"');
    if ((to - from) / interval > MAX_AGGREGATE_INTERVALS) {
      throw new OutpostError('BAD_REQUEST', `at most ${MAX_AGGREGATE_INTERVALS} intervals per request: use a longer interval or a shorter range`);
    }
    const values = await deps.store.queryAggregate(dp.id, { from, to, interval, agg });
    res.json({ id: dp.id, unit: dp.unit, from, to, interval, agg, count: values.length, values });
  });
  return r;
}
