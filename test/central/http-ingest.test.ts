import t from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import type { Teardown } from '../helpers/teardown.js';
import { API_TOKEN, startTestCentral } from './helpers.js';

const GW = 'site-http';
const SECRET = 'site-http-hmac-secret-0123456789';
const IDS = ['plant.meter.power', 'plant.meter.energy', 'plant.boiler.temp'];
const T0 = Date.UTC(2025, 4, 5, 6);

/**
 * A proxy in front of central that loses the first `drop` answers to batch POSTs: the request
 * reaches central (and is committed), the 200 never reaches the gateway, which retries the
 * same batch under the same Idempotency-Key.
 */
async function lossyProxy(t: Teardown, target: string, drop: number): Promise<{ url: string; keys: string[]; dropped: number }> {
  const state = { url: '', keys: [] as string[], dropped: 0 };
  const upstream = new URL(target);
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const key = req.headers['idempotency-key'];
      if (typeof key === 'string') state.keys.push(key);
      const out = http.request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers }, (answer) => {
        const body: Buffer[] = [];
        answer.on('data', (c: Buffer) => body.push(c));
        answer.on('end', () => {
          if (typeof key === 'string' && state.dropped < drop) {
            state.dropped++;
            req.socket.destroy(); // committed at central, the answer lost on the way back
            return;
          }
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          res.end(Buffer.concat(body));
        });
      });
      out.on('error', () => res.destroy());
      out.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  server.on('connection', (s) => t.teardown(() => s.destroy()));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

t.test('a real gateway syncs over its http link: every reading stored once, retries with the same key dropped, the API answers as the gateway', async (t) => {
  const central = await startTestCentral(t, { gateways: [{ id: GW, name: 'Boiler house', tags: ['north'], auth: { type: 'hmac', secret: SECRET } }] });
  const proxy = await lossyProxy(t, central.url, 3);
  const gw = await startTestGateway(t, {
    gateway: { id: GW },
    storage: { sync: false },
    datapoints: [...IDS.map((id) => ({ id, kind: 'sensor', type: 'number' })), { id: 'pump.setpoint', kind: 'actuator', type: 'number', min: 0, max: 100 }],
    sync: {
      enabled: true,
      pollMs: 20,
      datapointsIntervalMs: 200,
      backoff: { initialMs: 50, maxMs: 200 },
      links: [
        {
          name: 'central',
          type: 'http',
          url: `${proxy.url}/api/ingest/batch`,
          auth: { type: 'hmac', secret: SECRET },
          batchRecords: 100,
          ackTimeoutMs: 5000,
          downlink: { url: `${central.url}/api/ingest`, intervalMs: 100, maxBackoffMs: 500 },
        },
      ],
    },
  });

  // 1,500 readings in three bursts while the link drains.
  for (let burst = 0; burst < 3; burst++) {
    const points = [];
    for (let i = 0; i < 500; i++) {
      const n = burst * 500 + i;
      points.push({ id: IDS[n % 3]!, v: n % 3 === 1 ? n * 10 : n / 4, t: T0 + n * 1000 });
    }
    await gw.gateway.ingest.acceptMany('test', points);
  }
  const store = central.store!;
  const lastSeq = () => gw.gateway.store.stats().lastSeq;
  // The gateway keeps writing (its sync status datapoints): the drained point is taken once.
  let drained = 0;
  await eventually(
    async () => {
      drained = lastSeq();
      return (await store.countSeqs(GW)) >= drained && gw.gateway.store.stats().ackedSeq >= drained;
    },
    60_000,
    100,
  );

  t.equal(proxy.dropped, 3, 'three answers were lost on the way back');
  const repeated = proxy.keys.filter((k, i) => proxy.keys.indexOf(k) !== i);
  t.ok(repeated.length >= 3, `the link sent those batches again under the same Idempotency-Key (${repeated.slice(0, 3).join(', ')})`);
  t.ok((await store.countSeqs(GW)) >= drained, `every outbox seq up to the drained point (${drained}) stored`);
  for (const id of IDS) {
    const onSite = await gw.gateway.store.query(id, { from: T0, to: T0 + 2_000_000, limit: 100_000 });
    const atCentral = await store.query(GW, id, { from: T0, to: T0 + 2_000_000, limit: 100_000 });
    t.equal(atCentral.length, 500, `${id}: 500 readings at central`);
    t.same(atCentral, onSite, `${id}: the same readings as on the site`);
  }
  const metrics = await (await fetch(`${central.url}/metrics`, { headers: { authorization: `Bearer ${API_TOKEN}` } })).text();
  const dup = /outpost_central_ingest_records_total\{via="http",lane="history",result="duplicate"\} (\d+)/.exec(metrics);
  t.ok(dup && Number(dup[1]) >= 1, `the retried records counted as duplicates (${dup?.[1]})`);

  // The fleet API: the gateway's query shapes, prefixed by the gateway.
  const from = T0;
  const to = T0 + 1_500_000;
  const siteRaw = await (await fetch(`${gw.httpUrl}/api/datapoints/plant.meter.power/values?from=${from}&to=${to}&limit=50&order=desc`)).json();
  const centralRaw = await central.get(`/api/gateways/${GW}/datapoints/plant.meter.power/values?from=${from}&to=${to}&limit=50&order=desc`);
  t.equal(centralRaw.status, 200);
  t.same(centralRaw.body.values, (siteRaw as { values: unknown }).values, 'raw values: what the site answers');
  t.equal(centralRaw.body.truncated, true);
  const siteAgg = await (await fetch(`${gw.httpUrl}/api/datapoints/plant.boiler.temp/values?from=${from}&to=${to}&interval=15m&agg=avg`)).json();
  const centralAgg = await central.get(`/api/gateways/${GW}/datapoints/plant.boiler.temp/values?from=${from}&to=${to}&interval=15m&agg=avg`);
  t.same(centralAgg.body.values, (siteAgg as { values: unknown }).values, '15 min averages: what the site answers');
  t.ok(centralAgg.body.values.length >= 2);

  // What central shows of the gateway: last seen, the link, the backlog it reported.
  await eventually(async () => (await central.get(`/api/gateways/${GW}`)).body.backlog.records !== null, 10_000);
  const summary = (await central.get(`/api/gateways/${GW}`)).body;
  t.equal(summary.state, 'online');
  t.equal(summary.link, 'http');
  t.equal(summary.name, 'Boiler house');
  t.ok(Date.now() - summary.lastSeen < 10_000, 'seen just now');
  t.equal(typeof summary.backlog.records.v, 'number', 'the backlog as the gateway reported it (gateway.sync.backlog)');
  t.equal(typeof summary.backlog.catchUpSeconds.v, 'number', 'and its catch-up estimate');
  await eventually(async () => (await central.get(`/api/gateways/${GW}`)).body.links.central?.state?.v === 'up', 10_000);
  t.same(
    (await central.get('/api/gateways?tag=north')).body.items.map((g: { id: string }) => g.id),
    [GW],
    'by tag',
  );
  t.same((await central.get('/api/gateways?tag=south')).body.items, []);
  const across = (await central.get('/api/datapoints?id=plant.meter.energy')).body;
  t.same(
    across.items.map((d: { gateway: string; type: string }) => [d.gateway, d.type]),
    [[GW, 'number']],
  );
  t.equal((await central.get('/api/gateways/nobody')).status, 404);
  t.equal((await central.get(`/api/gateways/${GW}/datapoints/nothing.here/values`)).status, 404);

  // The HTTP poll downlink: a command queued at central reaches the gateway's actuator once, and its ack comes back.
  const queued = await store.enqueueCommand(GW, { requestId: 'r-http-1', type: 'setpoint', id: 'pump.setpoint', v: 42.5 });
  await eventually(async () => (await store.commandsAfter(GW, queued.cursor - 1, 1))[0]?.state === 'applied', 20_000, 50);
  t.equal(gw.gateway.store.latest('pump.setpoint')?.v, 42.5, 'the setpoint was applied on the site');
  const refused = await store.enqueueCommand(GW, { requestId: 'r-http-2', type: 'setpoint', id: 'pump.setpoint', v: 500 });
  await eventually(async () => (await store.commandsAfter(GW, refused.cursor - 1, 1))[0]?.state === 'refused', 20_000, 50);
  t.equal((await store.commandsAfter(GW, refused.cursor - 1, 1))[0]?.ack?.error?.code, 'SETPOINT_OUT_OF_RANGE', "refused with the gateway's reason");
  t.equal(gw.gateway.store.latest('pump.setpoint')?.v, 42.5, 'not applied');
});
