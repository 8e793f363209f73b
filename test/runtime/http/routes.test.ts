import t from 'tap';
import type { Server } from 'node:http';
import express from 'express';
import { startTestGateway } from '../../helpers/gateway.js';
import { routePlugins, routeTable, mountRoutes, type RouteEntry } from '../../../runtime/http/routes.js';

/** `/api/datapoints/:id` and `/api/datapoints/:dp` are one URL: parameter names do not matter. */
const url = (e: RouteEntry): string => `${e.method} ${e.path.replace(/:[A-Za-z0-9_]+/g, ':')}`;

function owners(entries: RouteEntry[]): Map<string, Set<object>> {
  const byUrl = new Map<string, Set<object>>();
  for (const e of entries) {
    const key = url(e);
    const set = byUrl.get(key) ?? new Set<object>();
    set.add(e.owner);
    byUrl.set(key, set);
  }
  return byUrl;
}

t.test('routeTable walks nested routers, mounted paths and static middleware', async (t) => {
  const app = express();
  const inner = express.Router();
  inner.get('/x/:id', (_q, r) => void r.end());
  inner.post(['/a', '/b'], (_q, r) => void r.end());
  const outer = express.Router();
  outer.use(inner);
  app.use('/pre', outer);
  app.use('/ui', express.static('.'));
  app.use(express.json());
  const table = routeTable(app).map((e) => `${e.method} ${e.path}`);
  t.same(table.sort(), ['GET /pre/x/:id', 'POST /pre/a', 'POST /pre/b', 'USE /ui/*'].sort());
});

t.test('every URL of the running gateway is served by exactly one router', async (t) => {
  const gw = await startTestGateway(t, {
    adapters: [{ id: 'sim', type: 'simulated', interval: 60_000 }],
    dashboard: { enabled: true },
  });
  const server = (gw.gateway as unknown as { http: Server }).http;
  const app = server.listeners('request')[0];
  const table = routeTable(app);
  const shared = [...owners(table)].filter(([, set]) => set.size > 1).map(([key]) => key);
  t.same(shared, [], 'no URL has two routers');
  const keys = table.map(url);
  const twice = keys.filter((k, i) => keys.indexOf(k) !== i);
  t.same(twice, [], 'no URL is registered twice in one router');
  for (const expected of [
    'GET /api/datapoints/:/values',
    'GET /api/datapoints/:',
    'DELETE /api/datapoints/:',
    'GET /api/datapoints/:/stored',
    'POST /api/datapoints/:/setpoint',
    'GET /api/audit',
    'GET /api/admin/backup',
    'POST /api/admin/restore',
    'POST /api/auth/login',
    'GET /healthz',
    'GET /metrics',
    'GET /',
  ]) {
    t.ok(keys.includes(expected), `${expected} is registered`);
  }
});

t.test('the plugin list: unique names, each plugin only when its feature is on', async (t) => {
  const names = routePlugins.map((p) => p.name);
  t.same(new Set(names).size, names.length, 'plugin names are unique');
  const router = express.Router();
  t.same(mountRoutes(router, {}), [], 'no deps, no features');
  t.same(mountRoutes(router, { dashboard: true }), ['dashboard']);
});

t.test('raw and aggregated values come from one handler', async (t) => {
  const gw = await startTestGateway(t, { datapoints: [{ id: 'v.x', kind: 'sensor', type: 'number' }] });
  const now = Date.now();
  await gw.gateway.store.write([
    { id: 'v.x', t: now - 1000, v: 1 },
    { id: 'v.x', t: now - 500, v: 3 },
  ]);
  const raw = (await (await fetch(`${gw.httpUrl}/api/datapoints/v.x/values?from=${now - 60_000}&to=${now}`)).json()) as {
    values: Array<{ v: number }>;
    truncated: boolean;
  };
  t.same(
    raw.values.map((p) => p.v),
    [1, 3],
  );
  t.equal(raw.truncated, false);
  const desc = (await (await fetch(`${gw.httpUrl}/api/datapoints/v.x/values?from=${now - 60_000}&to=${now}&order=desc&limit=1`)).json()) as {
    values: Array<{ v: number }>;
    truncated: boolean;
  };
  t.same([desc.values.map((p) => p.v), desc.truncated], [[3], true]);
  const agg = await fetch(`${gw.httpUrl}/api/datapoints/v.x/values?interval=1h&agg=max&from=${now - 3_600_000}&to=${now}`);
  t.equal(agg.status, 200);
  t.match(await agg.json(), { id: 'v.x', agg: 'max' });
  const bad = await fetch(`${gw.httpUrl}/api/datapoints/v.x/values?limit=0`);
  t.equal(bad.status, 400);
});
