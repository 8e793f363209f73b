import t from 'tap';
import express from 'express';
import { createServer } from 'node:http';
import { MemoryStore } from '../../../storage/memory-store.js';
import { valuesRoutes } from '../../../runtime/http/values.js';
import { OutpostError } from '../../../core/errors.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2025, 0, 6);

t.test('GET /api/datapoints/:id/values with interval answers aggregates, without it raw values (one handler)', async (t) => {
  const store = new MemoryStore();
  await store.open();
  await store.write(Array.from({ length: 8 }, (_, i) => ({ id: 'e.kwh', t: T0 + i * 15 * 60_000, v: 100 + i * 2 })));
  const app = express();
  app.use(
    valuesRoutes({
      store,
      datapoint: (id) => (id === 'e.kwh' ? { id, adapter: 'virtual', kind: 'sensor', type: 'number', unit: 'kWh' } : undefined),
      clock: { now: () => T0 + 2 * HOUR } as never,
    }),
  );
  app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    const e = err instanceof OutpostError ? err : new OutpostError('INTERNAL');
    res.status(e.status).json({ error: e.toJSON() });
  });
  const server = createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}/api/datapoints`;
  const get = async (path: string) => {
    const res = await fetch(base + path);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const hourly = await get(`/e.kwh/values?interval=1h&agg=delta&from=${T0}&to=${T0 + 2 * HOUR - 1}`);
  t.equal(hourly.status, 200);
  t.same(
    hourly.body.values,
    [
      { t: T0, v: 6, count: 4 },
      { t: T0 + HOUR, v: 8, count: 4 },
    ],
    'kWh per hour from the counter',
  );
  t.same([hourly.body.unit, hourly.body.interval, hourly.body.agg], ['kWh', HOUR, 'delta']);
  const avg = await get(`/e.kwh/values?interval=15m&from=${new Date(T0).toISOString()}&to=${T0 + HOUR - 1}`);
  t.same(
    (avg.body.values as Array<{ v: number }>).map((p) => p.v),
    [100, 102, 104, 106],
    'default agg is avg; ISO dates accepted',
  );
  const raw = await get(`/e.kwh/values?from=${T0}&to=${T0 + HOUR}&limit=3`);
  t.same(
    (raw.body.values as Array<{ v: number }>).map((p) => p.v),
    [100, 102, 104],
    'no interval: raw values',
  );
  t.same([raw.body.count, raw.body.truncated], [3, true], 'limit reached: truncated');
  t.match((await get('/nope/values')).body.error, { code: 'DP_UNKNOWN' }, 'unknown datapoint without interval too');
  for (const [q, why] of [
    ['interval=30s', 'sub-minute interval'],
    ['interval=abc', 'malformed interval'],
    ['interval=1h&agg=median', 'unknown agg'],
    [`interval=1h&from=${T0 + HOUR}&to=${T0}`, 'from after to'],
    ['interval=1h&from=yesterday', 'bad date'],
    [`interval=1m&from=0&to=${T0}`, 'too many intervals'],
  ]) {
    const r = await get(`/e.kwh/values?${q}`);
    t.same([r.status, (r.body.error as { code: string }).code], [400, 'BAD_REQUEST'], why);
  }
  const unknown = await get('/nope/values?interval=1h');
  t.same([unknown.status, (unknown.body.error as { code: string }).code], [404, 'DP_UNKNOWN']);
});
