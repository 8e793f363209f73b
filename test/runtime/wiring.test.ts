import t from 'tap';
import mqtt from 'mqtt';

import { startTestGateway, eventually } from '../helpers/gateway.js';
import { Mosquitto } from '../sync/helpers/mosquitto.js';
import { Receiver } from '../sync/helpers/receiver.js';
import { tempDir } from '../helpers/teardown.js';

// The gateway wires storage rollups, broker persistence and sync from config alone.

t.test('aggregated queries over REST are answered from rollups', async (t) => {
  const gw = await startTestGateway(t);
  const t0 = Date.UTC(2026, 0, 1);
  await gw.gateway.registry.register({ id: 'meter.energy', adapter: 'virtual', unit: 'kWh' });
  // A cumulative counter: 1 kWh per minute for 2 h, with a meter reset after 90 min.
  const points = Array.from({ length: 120 }, (_, i) => ({ id: 'meter.energy', v: i < 90 ? 1000 + i : i - 90, t: t0 + i * 60_000 }));
  await gw.gateway.ingest.acceptMany('test', points);
  const q = async (qs: string) =>
    (await (await fetch(`${gw.httpUrl}/api/datapoints/meter.energy/values?from=${t0}&to=${t0 + 2 * 3600_000 - 1}&${qs}`)).json()) as {
      values: Array<{ t: number; v: number }>;
    };
  const counts = await q('interval=1h&agg=count');
  t.same(
    counts.values.map((v) => v.v),
    [60, 60],
  );
  const delta = await q('interval=1h&agg=delta');
  // Hour 1: 1000→1059. Hour 2: +1 across the boundary, +29 to 1089, reset to 0 (the new baseline), +29.
  t.same(
    delta.values.map((v) => v.v),
    [59, 59],
    'consumption per hour, across the counter reset',
  );
  const bad = await fetch(`${gw.httpUrl}/api/datapoints/meter.energy/values?interval=7x&agg=avg`);
  t.equal(bad.status, 400);
});

t.test('persistent MQTT sessions and their offline QoS 1 queues survive a gateway restart', async (t) => {
  const dataDir = await tempDir(t, 'outpost-wiring-');
  const first = await startTestGateway(t, {}, { dataDir });
  const sub = await mqtt.connectAsync(first.mqttUrl, { clientId: 'scada-1', clean: false, reconnectPeriod: 0 });
  await sub.subscribeAsync('alarms/#', { qos: 1 });
  await sub.endAsync();
  const pub = await mqtt.connectAsync(first.mqttUrl, { reconnectPeriod: 0 });
  await pub.publishAsync('alarms/pump1', 'overheat', { qos: 1 });
  await pub.endAsync();
  await first.stop();

  const second = await startTestGateway(t, {}, { dataDir });
  const got: string[] = [];
  // Listen before CONNACK: the queued message follows it immediately.
  const back = mqtt.connect(second.mqttUrl, { clientId: 'scada-1', clean: false, reconnectPeriod: 0 });
  back.on('message', (_topic, payload) => got.push(payload.toString()));
  t.teardown(() => back.endAsync());
  await eventually(() => got.length === 1);
  t.same(got, ['overheat'], 'the queued alarm is delivered after the restart');
});

t.test('sync from config: readings reach a real Mosquitto upstream', async (t) => {
  const upstream = await Mosquitto.create(t);
  const receiver = await Receiver.connect(t, upstream.url);
  const gw = await startTestGateway(t, {
    gateway: { id: 'site-7' },
    sync: { enabled: true, links: [{ name: 'central', type: 'mqtt', url: upstream.url }] },
  });
  const c = await mqtt.connectAsync(gw.mqttUrl, { reconnectPeriod: 0 });
  t.teardown(() => c.endAsync());
  for (let i = 0; i < 10; i++) await c.publishAsync('outpost/dp/tank.level/value', JSON.stringify({ v: i, t: Date.now() - 10_000 + i }), { qos: 1 });
  await eventually(() => receiver.records.filter((r) => r.id === 'tank.level').length === 10, 15_000);
  t.same(
    receiver.records.filter((r) => r.id === 'tank.level').map((r) => r.v),
    [...Array(10).keys()],
  );
  t.match(receiver.keys[0], /^site-7:/, 'batches carry the gateway id in their idempotency key');
  const sync = (await (await fetch(`${gw.httpUrl}/api/sync`)).json()) as { links: unknown };
  t.ok(sync.links, '/api/sync reports the link state');
});
