import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { Receiver, inOrderPerDatapoint } from './helpers/receiver.js';
import { GATEWAY_ID, sensors, startSync, writeReadings } from './helpers/sync.js';
import { decodeBatch } from '../../runtime/sync/codec.js';

const IDS = ['plant.m1.power', 'plant.m1.energy', 'plant.m2.power', 'yard.temp'];
const T0 = Date.UTC(2025, 0, 1);

function mqttLink(url: string, extra: Record<string, unknown> = {}) {
  return { name: 'central', type: 'mqtt', url, reconnectMs: 100, batchRecords: 500, ackTimeoutMs: 5000, ...extra };
}

const fast = { pollMs: 20, backoff: { initialMs: 50, maxMs: 300 }, datapointsIntervalMs: 0 };

t.test('drains the outbox to Mosquitto with QoS 1, then releases it from storage', async (t) => {
  const broker = await Mosquitto.create(t);
  const receiver = await Receiver.connect(t, broker.url, { clientId: 'central-1', clean: false });
  const gw = await startTestGateway(t, { datapoints: sensors(IDS), storage: { sync: false } });
  await writeReadings(gw, IDS, 5000, T0);
  const { sync } = await startSync(t, gw, { ...fast, links: [mqttLink(broker.url)] });

  await eventually(() => receiver.records.length === 5000, 15_000);
  t.equal(receiver.duplicates, 0, 'no duplicates on a clean run');
  t.notOk(inOrderPerDatapoint(receiver.records), 'in order per datapoint');
  t.same(
    receiver.records.map((r) => r.seq),
    Array.from({ length: 5000 }, (_, i) => i + 1),
    'every sequence once, in order',
  );
  t.same(receiver.records[7], { seq: 8, id: IDS[7 % 4], t: T0 + 7, v: 7 });

  // Payload: gzip'd JSON with the idempotency key gateway:first-last.
  const first = receiver.raw.find((m) => m.topic === `sites/${GATEWAY_ID}/data`)!;
  t.equal(first.payload[0], 0x1f, 'gzip magic');
  const batch = decodeBatch(first.payload);
  t.equal(batch.key, `${GATEWAY_ID}:${batch.first}-${batch.last}`);
  t.equal(batch.records.length, 500, 'batchRecords honoured');

  // Nothing left unacknowledged: cursor file and the store's outbox both moved.
  await eventually(async () => (await gw.gateway.store.readOutbox(0, 10)).length === 0);
  await eventually(async () => JSON.parse(await readFile(join(gw.dataDir, 'sync', 'cursor.json'), 'utf8')).acked === 5000);
  t.equal(gw.gateway.store.stats().ackedSeq, 5000);

  const snap = await sync.snapshot();
  t.equal(snap.backlogRecords, 0);
  t.equal(snap.mode, 'primary');
  t.match(snap.links, [{ name: 'central', state: 'up', records: 5000 }]);

  // Retained online status, and the gauges on /metrics.
  const status = await new Promise<string>((resolve) => {
    const c = mqtt.connect(broker.url);
    c.on('message', (_topic, payload) => {
      resolve(payload.toString());
      c.end(true);
    });
    c.subscribe(`sites/${GATEWAY_ID}/status`);
  });
  t.match(JSON.parse(status), { state: 'online', gatewayId: GATEWAY_ID });
  const metrics = await (await fetch(`${gw.httpUrl}/metrics`)).text();
  t.match(metrics, /outpost_sync_backlog_records 0/);
  t.match(metrics, /outpost_sync_link_up\{link="central"\} 1/);
  t.match(metrics, /outpost_sync_records_total\{link="central"\} 5000/);
});

t.test('link down for a long stretch while ingest continues, then up: every record once, in order per datapoint', async (t) => {
  const broker = await Mosquitto.create(t);
  const receiver = await Receiver.connect(t, broker.url, { clientId: 'central-2', clean: false });
  const gw = await startTestGateway(t, { datapoints: sensors(IDS), storage: { sync: false } });
  const { sync } = await startSync(t, gw, { ...fast, live: { thresholdRecords: 1000, intervalMs: 300 }, links: [mqttLink(broker.url)] });

  await writeReadings(gw, IDS, 1000, T0);
  await eventually(() => receiver.records.length === 1000, 10_000);

  // The broker goes away (SIGTERM keeps the receiver's persistent session on disk).
  await broker.stop('SIGTERM');
  await eventually(async () => (await sync.snapshot()).links[0]!.state === 'down');
  // Ingest goes on while the link is down: 20,000 more readings in 20 bursts.
  for (let i = 0; i < 20; i++) {
    await gw.gateway.ingest.acceptMany(
      'test',
      Array.from({ length: 1000 }, (_, j) => ({ id: IDS[j % IDS.length]!, v: 1000 + i * 1000 + j, t: T0 + 1000 + i * 1000 + j })),
    );
    await new Promise((r) => setTimeout(r, 25));
  }
  const down = await sync.snapshot();
  t.equal(down.mode, 'offline');
  t.equal(down.backlogRecords, 20_000, 'backlog counts what was not acknowledged');
  t.ok(down.oldestUnsentAgeSeconds > 0, 'oldest unsent age reported');
  t.ok(down.links[0]!.lastError !== undefined || down.links[0]!.state === 'down');
  t.equal(down.acked, 1000, 'the cursor stays where the upstream acknowledged');
  t.ok(gw.gateway.store.stats().ackedSeq <= 1000, 'nothing beyond it released from the outbox while the link is down');
  t.equal((await gw.gateway.store.readOutbox(1000, 30_000)).length, 20_000, 'every unsent record is still in the outbox');

  await broker.start();
  const t1 = Date.now();
  await eventually(() => receiver.records.length === 21_000, 30_000);
  t.comment(`caught up in ${Date.now() - t1} ms`);
  t.notOk(inOrderPerDatapoint(receiver.records), 'in order per datapoint');
  t.same(
    receiver.records.map((r) => r.seq),
    Array.from({ length: 21_000 }, (_, i) => i + 1),
    'every record exactly once after dedupe',
  );
  t.ok(receiver.live.length > 0, 'latest values went out on the live lane while catching up');
  for (const id of IDS)
    t.ok(
      receiver.live.some((r) => r.id === id),
      `live lane has ${id}`,
    );
  await eventually(() => gw.gateway.store.stats().ackedSeq === 21_000);
});

t.test('broker restarted mid-drain: the drain resumes from the cursor, nothing lost', async (t) => {
  const broker = await Mosquitto.create(t);
  const receiver = await Receiver.connect(t, broker.url, { clientId: 'central-3', clean: false });
  const gw = await startTestGateway(t, { datapoints: sensors(IDS), storage: { sync: false } });
  await writeReadings(gw, IDS, 30_000, T0);
  // A bandwidth cap makes the drain last long enough to be interrupted.
  const { logs } = await startSync(t, gw, {
    ...fast,
    live: { enabled: false },
    links: [mqttLink(broker.url, { batchRecords: 200, window: 4, maxBytesPerSecond: 60_000 })],
  });

  await eventually(() => receiver.records.length >= 3000, 20_000);
  t.ok(receiver.records.length < 30_000, 'restart happens mid-drain');
  await broker.restart(200);
  await eventually(() => receiver.records.length === 30_000, 60_000);
  t.same(
    receiver.records.map((r) => r.seq),
    Array.from({ length: 30_000 }, (_, i) => i + 1),
    'every record once, in order',
  );
  t.ok(
    logs.some((l) => l.msg === 'sync link down'),
    'the link saw the broker go away',
  );
  t.ok(logs.filter((l) => l.msg === 'sync link up').length >= 2, 'and reconnected by itself');
  await eventually(() => gw.gateway.store.stats().ackedSeq === 30_000);
});
