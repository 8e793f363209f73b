import t from 'tap';
import { Mosquitto } from './helpers/mosquitto.js';
import { startFleetGateway, type FleetGateway } from './helpers/fleet.js';
import { SitesReceiver } from './helpers/sites-receiver.js';
import { eventually } from '../helpers/gateway.js';

const GATEWAYS = 10;
const BACKLOG = 1500;
const DATAPOINTS = 5;
const T0 = Date.UTC(2025, 0, 1);

// Issue 8, "Scale beyond one gateway": a small fleet of real in-process gateways (LevelDB store,
// ingest, SyncService MQTT link) against ONE real Mosquitto; backlog plus live ingest during the
// drain, a broker restart in the middle; the receiver must end with every record of every
// gateway exactly once after dedupe, in order per datapoint, with keys of its own gateway only.
t.test('fleet of 10 gateways, one Mosquitto: zero loss, no duplicates after dedupe, order per datapoint', async (t) => {
  const broker = await Mosquitto.create(t);
  // A persistent session (QoS 1 subscription): the broker queues what arrives while the receiver reconnects after the restart.
  const receiver = await SitesReceiver.connect(broker.url, { clean: false, clientId: 'central-fleet-receiver' });
  t.teardown(() => receiver.close());
  const fleet: FleetGateway[] = [];
  t.teardown(() => Promise.all(fleet.map((gw) => gw.stop())));
  for (let i = 0; i < GATEWAYS; i++) fleet.push(await startFleetGateway(`site-${i}`, { datapoints: DATAPOINTS, storageSync: false }));
  for (const gw of fleet) await gw.writeBacklog(BACKLOG, T0);

  const written = new Map(fleet.map((gw) => [gw.id, BACKLOG]));
  let liveRounds = 0;
  const live = async (): Promise<void> => {
    const t = T0 + 1_000_000 + liveRounds++;
    await Promise.all(
      fleet.map(async (gw) => {
        await gw.gateway.ingest.acceptMany(
          'fleet',
          gw.datapoints.map((id, k) => ({ id, v: k, t })),
        );
        written.set(gw.id, written.get(gw.id)! + DATAPOINTS);
      }),
    );
  };
  // Small batches and window so the drain spans many PUBACK round trips and the restart hits it mid-way.
  const linkConfig = {
    pollMs: 20,
    datapointsIntervalMs: 0,
    backoff: { initialMs: 50, maxMs: 300 },
    links: [{ name: 'central', type: 'mqtt', url: broker.url, batchRecords: 100, window: 2, reconnectMs: 100 }],
  };
  await Promise.all(fleet.map((gw) => gw.startSync(linkConfig)));
  for (let i = 0; i < 5; i++) await live();
  // Mid-drain broker restart (SIGTERM, as an operator does): unacknowledged batches are resent.
  await eventually(() => receiver.gateways().reduce((n, g) => n + receiver.tally(g).accepted, 0) > 0, 20_000);
  const storedBeforeRestart = receiver.gateways().reduce((n, g) => n + receiver.tally(g).accepted, 0);
  await broker.restart(200);
  for (let i = 0; i < 5; i++) await live();

  await eventually(() => fleet.every((gw) => receiver.tally(gw.id).accepted >= written.get(gw.id)!), 60_000);
  await eventually(async () => (await Promise.all(fleet.map(async (gw) => (await gw.sync!.snapshot()).backlogRecords))).every((b) => b === 0), 20_000);

  let lost = 0;
  for (const gw of fleet) {
    const s = receiver.tally(gw.id);
    const w = written.get(gw.id)!;
    lost += Math.max(0, w - s.accepted);
    t.equal(s.accepted, w, `${gw.id}: stored once each, ${w} records`);
    t.same(s.ranges, [[1, w]], `${gw.id}: every sequence 1..${w}, no gap, nothing extra`);
    t.equal(s.outOfOrder, 0, `${gw.id}: in order per datapoint`);
    t.equal(s.foreignKeys, 0, `${gw.id}: idempotency keys name this gateway only`);
    t.ok(
      [...receiver.keys(gw.id)].every((k) => /^site-\d+:\d+-\d+$/.test(k) && k.startsWith(`${gw.id}:`)),
      `${gw.id}: keys are <gateway>:<first>-<last>`,
    );
  }
  t.ok(
    storedBeforeRestart < GATEWAYS * BACKLOG,
    `the broker restarted mid-drain (${storedBeforeRestart} of ${GATEWAYS * BACKLOG} backlog records stored before)`,
  );
  t.equal(lost, 0, 'lost: 0');
  t.equal(receiver.malformed, 0, 'every message decoded');
  t.equal(receiver.gateways().length, GATEWAYS, 'no message under an unknown gateway id');
});
