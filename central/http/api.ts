import type { Request, Response } from 'express';
import { OutpostError } from '../../core/errors.js';
import { DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT } from '../../storage/store.js';
import { MAX_AGGREGATE_INTERVALS, parseAggregation, parseInterval } from '../../storage/rollups.js';
import { datapointView, gatewaySummary } from '../fleet.js';
import { mapLimit } from '../../core/map-limit.js';
import { centralEnergyCounters } from '../energy-counters.js';
import type { GatewayDirectory } from '../gateways.js';
import type { CentralMetrics } from '../metrics.js';
import type { CentralStore } from '../store/contract.js';
import { intParam, stringParam, timeParam } from '../../core/http-params.js';
import type { CentralHttp } from './server.js';
import openapi from './openapi.json' with { type: 'json' };

/** Gateway summaries read at once for GET /api/gateways (below the store's default pool of 10). */
const SUMMARY_CONCURRENCY = 6;

export interface ApiDeps {
  http: CentralHttp;
  store: CentralStore;
  gateways: GatewayDirectory;
  metrics: CentralMetrics;
  offlineAfterMs: number;
  version: string;
  now?: () => number;
}

const DAY_MS = 86_400_000;

/**
 * The fleet API (read): gateways with what central knows and what they reported, their
 * datapoints, values and aggregates with the gateway's own query shapes
 * (`GET /api/datapoints/:id/values` there is `GET /api/gateways/:gateway/datapoints/:id/values`
 * here), datapoints across gateways, `/metrics`, `/healthz`, and the OpenAPI description.
 */
export function apiRoutes(d: ApiDeps): void {
  const now = d.now ?? Date.now;
  const { http, store } = d;

  http.route('get', '/healthz', 'public', (_req, res) => {
    const health = store.health();
    res
      .status(health.state === 'ok' ? 200 : 503)
      .json({ ok: health.state === 'ok', version: d.version, store: { kind: store.kind, ...health }, gateways: d.gateways.size });
  });

  http.route('get', '/api/openapi.json', 'public', (_req, res) => {
    res.json({ ...openapi, info: { ...openapi.info, version: d.version } });
  });

  http.route('get', '/metrics', 'api', async (_req, res) => {
    res.type(d.metrics.registry.contentType).send(await d.metrics.registry.metrics());
  });

  http.route('get', '/api/gateways', 'api', async (req, res) => {
    const tag = stringParam(req, 'tag');
    const ids = new Set([...d.gateways.list().map((g) => g.id), ...(await store.gatewayStates()).map((s) => s.id)]);
    const listed = [...ids].sort().filter((id) => tag === undefined || d.gateways.get(id)?.config.tags.includes(tag));
    // A few at a time: 1,000 gateways one after the other took 1.0–1.7 s on PostgreSQL (4 reads each), six at a time 0.7–1.0 s.
    const at = now();
    const items = await mapLimit(listed, SUMMARY_CONCURRENCY, (id) => gatewaySummary(store, d.gateways.get(id), id, at, d.offlineAfterMs));
    res.json({ items, count: items.length });
  });

  http.route('get', '/api/gateways/:gateway', 'api', async (req, res) => {
    const id = await known(d, param(req, 'gateway'));
    res.json(await gatewaySummary(store, d.gateways.get(id), id, now(), d.offlineAfterMs));
  });

  http.route('get', '/api/gateways/:gateway/datapoints', 'api', async (req, res) => {
    const id = await known(d, param(req, 'gateway'));
    const q = stringParam(req, 'q')?.toLowerCase();
    const items = (await store.datapoints(id)).filter((dp) => !q || dp.id.includes(q)).map(datapointView);
    res.json({ items, count: items.length });
  });

  http.route('get', '/api/gateways/:gateway/datapoints/:id', 'api', async (req, res) => {
    const gateway = await known(d, param(req, 'gateway'));
    const dp = (await store.datapoints(gateway)).find((x) => x.id === param(req, 'id'));
    if (!dp) throw new OutpostError('DP_UNKNOWN', `gateway "${gateway}" has sent no datapoint "${param(req, 'id')}"`);
    res.json(datapointView(dp));
  });

  http.route('get', '/api/gateways/:gateway/datapoints/:id/values', 'api', async (req, res) => {
    const gateway = await known(d, param(req, 'gateway'));
    const id = param(req, 'id');
    if (!(await store.datapoints(gateway)).some((x) => x.id === id)) throw new OutpostError('DP_UNKNOWN', `gateway "${gateway}" has sent no datapoint "${id}"`);
    await values(d, req, res, gateway, id, now());
  });

  // The site page's Consumption card: which datapoints are energy counters, by what central knows of them.
  http.route('get', '/api/gateways/:gateway/energy/counters', 'api', async (req, res) => {
    const gateway = await known(d, param(req, 'gateway'));
    const counters = centralEnergyCounters(await store.datapoints(gateway));
    res.json({ gateway, counters, count: counters.length });
  });

  http.route('get', '/api/datapoints', 'api', async (req, res) => {
    const q = stringParam(req, 'q')?.toLowerCase();
    const exact = stringParam(req, 'id');
    const gateway = stringParam(req, 'gateway');
    const items = (await store.datapoints(gateway))
      .filter((dp) => (exact === undefined || dp.id === exact) && (!q || dp.id.includes(q)))
      .slice(0, MAX_QUERY_LIMIT)
      .map(datapointView);
    res.json({ items, count: items.length });
  });

  http.route('get', '/api/gateways/:gateway/satellite', 'api', async (req, res) => {
    const gateway = await known(d, param(req, 'gateway'));
    const to = timeParam(req, 'to') ?? now();
    const from = timeParam(req, 'from') ?? to - 30 * DAY_MS;
    if (from > to) throw new OutpostError('BAD_REQUEST', '"from" is after "to"');
    res.json({ gateway, from, to, ...(await store.satelliteUsage(gateway, from, to)) });
  });
}

/** The gateway's `/values` handler, for one of its gateway's datapoints (runtime/http/values.ts). */
async function values(d: ApiDeps, req: Request, res: Response, gateway: string, id: string, now: number): Promise<void> {
  const to = timeParam(req, 'to') ?? now;
  const from = timeParam(req, 'from') ?? to - DAY_MS;
  if (from > to) throw new OutpostError('BAD_REQUEST', '"from" is after "to"');
  if (req.query.interval === undefined) {
    const limit = intParam(req, 'limit', MAX_QUERY_LIMIT) ?? DEFAULT_QUERY_LIMIT;
    const order = req.query.order === 'desc' ? 'desc' : 'asc';
    const list = await d.store.query(gateway, id, { from, to, limit, order });
    res.json({ gateway, id, from, to, count: list.length, truncated: list.length === limit, values: list });
    return;
  }
  if (typeof req.query.interval !== 'string') throw new OutpostError('BAD_REQUEST', '"interval" must be given once');
  const interval = parseInterval(req.query.interval);
  const agg = parseAggregation(req.query.agg);
  if ((to - from) / interval > MAX_AGGREGATE_INTERVALS)
    throw new OutpostError('BAD_REQUEST', `at most ${MAX_AGGREGATE_INTERVALS} intervals per request: use a longer interval or a shorter range`);
  const list = await d.store.queryAggregate(gateway, id, { from, to, interval, agg });
  res.json({ gateway, id, from, to, interval, agg, count: list.length, values: list });
}

/** A path parameter as one string. */
function param(req: Request, name: string): string {
  const v = req.params[name];
  return Array.isArray(v) ? v.join('/') : (v ?? '');
}

/** A gateway this central knows (configured, or with data): else 404 naming it. */
async function known(d: ApiDeps, id: string): Promise<string> {
  if (d.gateways.get(id) || (await d.store.gatewayState(id))) return id;
  throw new OutpostError('NOT_FOUND', `no gateway "${id.slice(0, 64)}"`);
}
