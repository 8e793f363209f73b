import t from 'tap';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { Receiver } from './helpers/receiver.js';
import { FakeSatelliteLink } from './helpers/fake-link.js';
import { GATEWAY_ID, sensors, startSync } from './helpers/sync.js';
import { selectPriority, compilePatterns } from '../../runtime/sync/priority.js';

const T0 = Date.UTC(2025, 0, 1);

/** Sync config: an HTTP primary nobody answers (it keeps probing) and a custom fallback link `iridium`. */
const UNREACHABLE_HTTP_PRIMARY = {
  pollMs: 20,
  datapointsIntervalMs: 0,
  backoff: { initialMs: 50, maxMs: 200 },
  fallback: { afterMs: 300, intervalMs: 100 },
  links: [
    { name: 'central', type: 'http', url: 'http://127.0.0.1:1/ingest', ackTimeoutMs: 500 },
    { name: 'iridium', type: 'custom', role: 'fallback' },
  ],
};

t.test('an unreachable HTTP primary (still probing) does not keep the fallback from starting', async (t) => {
  const gw = await startTestGateway(t, { datapoints: sensors(['plant.m1.power']), storage: { sync: false } });
  const satellite = new FakeSatelliteLink('iridium', 3, 10);
  const { sync } = await startSync(t, gw, UNREACHABLE_HTTP_PRIMARY, { customLinks: new Map([['iridium', satellite]]) });
  await gw.gateway.ingest.acceptMany('test', [{ id: 'plant.m1.power', v: 42, t: T0 }]);
  await eventually(() => satellite.sent.length >= 1, 10_000);
  t.match(satellite.sent[0]!.records, [{ id: 'plant.m1.power', v: 42 }], 'the latest value went over the satellite');
  const snap = await sync.snapshot();
  t.equal(snap.mode, 'fallback');
  t.equal(snap.links.find((l) => l.name === 'central')!.state, 'down', 'the HTTP primary is down (and keeps probing)');
});

t.test(
  'primary down longer than fallback.afterMs → alarms and latest values over the satellite link, then backfill over MQTT without duplicates',
  async (t) => {
    const broker = await Mosquitto.create(t);
    const receiver = await Receiver.connect(t, broker.url, { clientId: 'central-fb', clean: false });
    await broker.stop('SIGTERM');

    const ids = ['plant.m1.power', 'plant.m2.power', 'yard.temp', 'plant.boiler.alarm'];
    const gw = await startTestGateway(t, {
      datapoints: [...sensors(ids.slice(0, 3)), { id: 'plant.boiler.alarm', kind: 'sensor', type: 'boolean' }],
      storage: { sync: false },
    });
    const satellite = new FakeSatelliteLink('iridium', 3, 3);
    const { sync } = await startSync(
      t,
      gw,
      {
        pollMs: 20,
        datapointsIntervalMs: 0,
        backoff: { initialMs: 50, maxMs: 200 },
        fallback: { afterMs: 1500, intervalMs: 200 },
        links: [
          { name: 'central', type: 'mqtt', url: broker.url, reconnectMs: 100 },
          { name: 'iridium', type: 'custom', role: 'fallback' },
        ],
      },
      { customLinks: new Map([['iridium', satellite]]) },
    );

    // 3000 readings while the primary is down, an alarm among them and one bad reading.
    const points = [];
    for (let i = 0; i < 3000; i++) points.push({ id: ids[i % 3]!, v: i, t: T0 + i });
    points.splice(1500, 0, { id: 'plant.boiler.alarm', v: true as never, t: T0 + 1500 });
    points.push({ id: 'plant.m2.power', v: null as never, t: T0 + 5000, q: 'bad' as never });
    await gw.gateway.ingest.acceptMany('test', points);

    t.equal(satellite.sent.length, 0, 'no fallback before the primary has been down for afterMs');
    await eventually(() => satellite.sent.length >= 2, 10_000);
    const first = satellite.sent[0]!;
    t.equal(first.lane, 'priority');
    t.ok(first.records.length <= 3, 'the modem limit is honoured');
    t.ok(
      first.records.some((r) => r.id === 'plant.boiler.alarm'),
      'the alarm goes in the first message',
    );
    t.ok(
      first.records.some((r) => r.q === 'bad'),
      'so does the bad reading',
    );
    const viaSatellite = satellite.sent.flatMap((b) => b.records);
    t.equal(new Set(viaSatellite.map((r) => r.seq)).size, viaSatellite.length, 'no record is sent twice over the metered link');
    // Latest values: the newest reading of each ordinary datapoint.
    for (const id of ['plant.m1.power', 'yard.temp']) {
      const newest = points.filter((p) => p.id === id).at(-1)!;
      t.ok(
        viaSatellite.some((r) => r.id === id && r.t === newest.t),
        `latest ${id} sent`,
      );
    }
    await new Promise((r) => setTimeout(r, 600));
    t.equal(satellite.sent.length, 2, 'nothing new: nothing more spent on the metered link');
    t.equal(viaSatellite.length, 4, 'the alarm, the bad reading (the latest of plant.m2.power) and the latest of the 2 others');
    // New readings: one more message fits the budget of 3, then the budget is exhausted.
    await gw.gateway.ingest.acceptMany('test', [{ id: 'yard.temp', v: 1, t: T0 + 6000 }]);
    points.push({ id: 'yard.temp', v: 1, t: T0 + 6000 });
    await eventually(() => satellite.sent.length === 3);
    t.same(
      satellite.sent[2]!.records.map((r) => r.t),
      [T0 + 6000],
      'only the new value',
    );
    viaSatellite.push(...satellite.sent[2]!.records);
    await gw.gateway.ingest.acceptMany('test', [{ id: 'yard.temp', v: 2, t: T0 + 7000 }]);
    points.push({ id: 'yard.temp', v: 2, t: T0 + 7000 });
    await eventually(() => satellite.lastError === 'budget exhausted');
    t.equal(satellite.sent.length, 3, 'budget of 3 messages is not exceeded');
    // The fake link notes the refusal before it throws; the engine counts it once the throw
    // reaches its catch, a tick later: wait for the count rather than race it.
    const iridiumErrors = async () => (await sync.snapshot()).links.find((l) => l.name === 'iridium')!.errors;
    await eventually(async () => (await iridiumErrors()) >= 1, 5_000);
    const snap = await sync.snapshot();
    t.equal(snap.mode, 'fallback');
    t.equal(snap.acked, 0, 'fallback does not move the cursor');
    const iridium = snap.links.find((l) => l.name === 'iridium')!;
    t.ok(iridium.errors >= 1, 'exhausted budget counted as an error');
    t.equal(iridium.lastError, 'budget exhausted');
    t.equal(iridium.records, viaSatellite.length);

    // Primary back: everything is backfilled; the receiver, which got the satellite
    // records first, drops them from the backfill by sequence.
    for (const b of satellite.sent) receiver.dedupe.accept(GATEWAY_ID, b.records);
    await broker.start();
    await eventually(() => receiver.records.length + viaSatellite.length === points.length, 20_000);
    t.equal(receiver.duplicates, viaSatellite.length, 'exactly the satellite records were dropped as duplicates');
    const all = [...viaSatellite, ...receiver.records].map((r) => r.seq).sort((a, b) => a - b);
    t.same(
      all,
      Array.from({ length: points.length }, (_, i) => i + 1),
      'every record once at the receiver',
    );
    await eventually(async () => (await sync.snapshot()).mode === 'primary');
  },
);

t.test('priority selection: alarms (by pattern or bad/stale quality) first, then latest per datapoint', async (t) => {
  const isAlarm = compilePatterns(['*.alarm', 'alarm.*']);
  t.ok(isAlarm('plant.boiler.alarm'));
  t.ok(isAlarm('alarm.fire'));
  t.notOk(isAlarm('plant.alarmist'));
  const recs = [
    { seq: 1, id: 'a.x', t: 1, v: 1 },
    { seq: 2, id: 'a.x', t: 2, v: 2 },
    { seq: 3, id: 'b.alarm', t: 3, v: true },
    { seq: 4, id: 'c.y', t: 4, v: null, q: 'stale' as const },
    { seq: 5, id: 'd.z', t: 5, v: 5 },
  ];
  t.same(
    selectPriority(recs, isAlarm, 10).map((r) => r.seq),
    [2, 3, 4, 5],
  );
  t.same(
    selectPriority(recs, isAlarm, 3).map((r) => r.seq),
    [3, 4, 5],
    'alarms win when space is short, newest value next',
  );
  t.same(
    selectPriority(recs, isAlarm, 10, (r) => r.seq === 3 || r.seq === 5).map((r) => r.seq),
    [2, 4],
    'already sent are skipped',
  );
});

t.test('a restart during an outage does not pay again for what already went over the satellite', async (t) => {
  const gw = await startTestGateway(t, { datapoints: sensors(['plant.m1.power', 'plant.m2.power', 'yard.temp']), storage: { sync: false } });
  const config = UNREACHABLE_HTTP_PRIMARY;
  await gw.gateway.ingest.acceptMany('test', [
    { id: 'plant.m1.power', v: 1, t: T0 },
    { id: 'plant.m2.power', v: 2, t: T0 },
    { id: 'yard.temp', v: 3, t: T0 },
  ]);
  const before = new FakeSatelliteLink('iridium', 3, 10);
  const first = await startSync(t, gw, config, { customLinks: new Map([['iridium', before]]) });
  await eventually(() => before.sent.flatMap((b) => b.records).length === 3, 10_000);
  await first.sync.stop();

  const after = new FakeSatelliteLink('iridium', 3, 10);
  await startSync(t, gw, config, { customLinks: new Map([['iridium', after]]) });
  await gw.gateway.ingest.acceptMany('test', [{ id: 'yard.temp', v: 4, t: T0 + 1000 }]);
  await eventually(() => after.sent.length >= 1, 10_000);
  t.same(
    after.sent.flatMap((b) => b.records).map((r) => [r.id, r.v]),
    [['yard.temp', 4]],
    'after the restart only the new reading goes out, not the three sent before it',
  );
});
