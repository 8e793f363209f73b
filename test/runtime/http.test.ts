import t from 'tap';
import { startTestGateway } from '../helpers/gateway.js';
import { createHttp } from '../../runtime/http/server.js';
import { hashToken } from '../../runtime/auth/passwords.js';
import { createLogger } from '../../runtime/log.js';

const json = (body: unknown) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});

t.test('REST API over a running gateway', async (t) => {
  const gw = await startTestGateway(t, {
    datapoints: [{ id: 'site.mode', kind: 'actuator', type: 'string', allowed: ['auto', 'off'] }],
    adapters: [{ id: 'site', type: 'simulated', interval: 60_000 }],
  });
  const base = gw.httpUrl;
  const t0 = Date.UTC(2026, 0, 1);
  await gw.gateway.ingest.acceptMany(
    'test',
    Array.from({ length: 50 }, (_, i) => ({ id: 'site.outdoor.temperature', v: i, t: t0 + i * 1000 })),
  );

  const list = (await (await fetch(`${base}/api/datapoints`)).json()) as { items: Array<{ id: string; latest: unknown }>; count: number };
  t.ok(list.items.find((d) => d.id === 'site.grid.power')?.latest, 'datapoints are listed with their latest value');
  t.ok(
    list.items.find((d) => d.id === 'site.mode'),
    'virtual datapoints from config are listed',
  );
  const filtered = (await (await fetch(`${base}/api/datapoints?q=hvac`)).json()) as { items: Array<{ id: string }> };
  t.same(
    filtered.items.map((d) => d.id),
    ['site.hvac.enabled', 'site.hvac.setpoint'],
  );

  const one = await fetch(`${base}/api/datapoints/site.hvac.setpoint`);
  t.match(await one.json(), { id: 'site.hvac.setpoint', kind: 'actuator', min: 16, max: 26, unit: '°C' });
  const missing = await fetch(`${base}/api/datapoints/nope`);
  t.equal(missing.status, 404);
  t.match(await missing.json(), { error: { code: 'DP_UNKNOWN', message: /nope/ } });

  const range = (await (
    await fetch(`${base}/api/datapoints/site.outdoor.temperature/values?from=${t0 + 10_000}&to=${new Date(t0 + 19_000).toISOString()}`)
  ).json()) as { values: Array<{ t: number; v: number }>; count: number };
  t.equal(range.count, 10, 'from/to are inclusive; ISO dates accepted');
  t.same(range.values[0], { t: t0 + 10_000, v: 10 });
  const limited = (await (await fetch(`${base}/api/datapoints/site.outdoor.temperature/values?from=${t0}&to=${t0 + 60_000}&limit=5&order=desc`)).json()) as {
    values: Array<{ v: number }>;
    truncated: boolean;
  };
  t.same(
    limited.values.map((v) => v.v),
    [49, 48, 47, 46, 45],
  );
  t.equal(limited.truncated, true);
  for (const q of ['from=yesterday', 'limit=0', 'limit=1000000', `from=${t0 + 1}&to=${t0}`]) {
    const bad = await fetch(`${base}/api/datapoints/site.outdoor.temperature/values?${q}`);
    t.equal(bad.status, 400, q);
    t.match(await bad.json(), { error: { code: 'BAD_REQUEST' } });
  }

  const ok = await fetch(`${base}/api/datapoints/site.hvac.setpoint/setpoint`, json({ v: 20.5 }));
  t.equal(ok.status, 200);
  t.match(await ok.json(), { ok: true, id: 'site.hvac.setpoint', v: 20.5 });
  t.equal(gw.gateway.store.latest('site.hvac.setpoint')?.v, 20.5, 'the adapter applied and reported it');
  const out = await fetch(`${base}/api/datapoints/site.hvac.setpoint/setpoint`, json({ v: 99 }));
  t.equal(out.status, 400);
  t.match(await out.json(), { error: { code: 'SETPOINT_OUT_OF_RANGE', message: /99 is outside the allowed range \[16, 26\]/, details: { min: 16, max: 26 } } });
  t.equal(gw.gateway.store.latest('site.hvac.setpoint')?.v, 20.5, 'a refused setpoint changes nothing');
  const wrongType = await fetch(`${base}/api/datapoints/site.hvac.setpoint/setpoint`, json({ v: 'warm' }));
  t.match(await wrongType.json(), { error: { code: 'VALUE_TYPE' } });
  const sensor = await fetch(`${base}/api/datapoints/site.grid.power/setpoint`, json({ v: 1 }));
  t.match(await sensor.json(), { error: { code: 'DP_NOT_ACTUATOR' } });
  const notJson = await fetch(`${base}/api/datapoints/site.hvac.setpoint/setpoint`, json('{"v": '));
  t.equal(notJson.status, 400);
  t.match(await notJson.json(), { error: { code: 'BAD_REQUEST', message: /not valid JSON/ } });
  const virtual = await fetch(`${base}/api/datapoints/site.mode/setpoint`, json({ v: 'off' }));
  t.equal(virtual.status, 200, 'a virtual actuator records the wanted value');
  t.equal(gw.gateway.store.latest('site.mode')?.v, 'off');
  t.equal((await fetch(`${base}/api/datapoints/site.mode/setpoint`, json({ v: 'turbo' }))).status, 400);

  const health = await fetch(`${base}/healthz`);
  t.equal(health.status, 200);
  t.match(await health.json(), { status: 'ok', storage: { state: 'ok' }, adapters: { site: 'running' } });
  const adapters = (await (await fetch(`${base}/api/adapters`)).json()) as { items: Array<{ id: string; state: string }> };
  t.match(adapters.items, [{ id: 'site', type: 'simulated', state: 'running' }]);

  const metrics = await (await fetch(`${base}/metrics`)).text();
  t.match(metrics, /outpost_messages_in_total\{adapter="site"\} \d+/);
  t.match(metrics, /outpost_points_stored_total\{adapter="test"\} 50/);
  t.match(metrics, /outpost_setpoints_total\{result="SETPOINT_OUT_OF_RANGE"\} 2/);
  t.match(metrics, /outpost_process_resident_memory_bytes/);

  const nf = await fetch(`${base}/api/nothing`);
  t.equal(nf.status, 404);
  t.match(await nf.json(), { error: { code: 'NOT_FOUND' } });
  t.equal(nf.headers.get('x-content-type-options'), 'nosniff');
});

t.test('clients beyond loopback need a bearer token', async (t) => {
  const token = 'x'.repeat(40);
  const http = createHttp({
    log: createLogger({ level: 'silent', pretty: false }),
    tokens: [hashToken(token)],
    maxBodyBytes: 1024,
    bus: {} as never,
    websocketPath: undefined,
  });
  http.api.get('/api/ping', (_req, res) => res.json({ pong: true }));
  http.finish();
  // Drive the real express app with a request whose socket is on the site network.
  const call = (headers: Record<string, string>, path = '/api/ping', remoteAddress = '10.0.0.7') =>
    new Promise<{ status: number; body: string }>((resolve) => {
      const req = Object.assign(Object.create(http.app.request), {
        method: 'GET',
        url: path,
        headers,
        socket: { remoteAddress },
        connection: { remoteAddress },
      });
      let body = '';
      const res = Object.assign(Object.create(http.app.response), {
        statusCode: 200,
        setHeader() {},
        getHeader() {},
        removeHeader() {},
        end(chunk?: string) {
          body += chunk ?? '';
          resolve({ status: this.statusCode, body });
        },
        write(chunk: string) {
          body += chunk;
          return true;
        },
      });
      req.res = res;
      res.req = req;
      (http.app as unknown as { handle: (...a: unknown[]) => void }).handle(req, res, () => resolve({ status: 404, body: '' }));
    });
  t.equal((await call({})).status, 401);
  t.match(JSON.parse((await call({})).body), { error: { code: 'NOT_AUTHENTICATED' } });
  t.equal((await call({ authorization: 'Bearer wrong' })).status, 401);
  t.equal((await call({ authorization: `Bearer ${token}` })).status, 200);
  t.equal((await call({}, '/api/ping', '127.0.0.1')).status, 200, 'loopback is trusted');
  t.equal((await call({}, '/healthz')).status, 404, 'health is reachable without a token (no route in this bare app)');
});
