/**
 * Issue 19, satellite part: a site on satellite only whose disk fills is not silent. The
 * gateway's storage goes read-only (a write failure injected into its real LevelDB) while the
 * day's budget for latest values is spent: the storage state goes over the modem (a real pty,
 * the simulator on the far end) in the alarm reserve, and so does the recovery. Outpost Central's
 * RockBLOCK webhook, posted to as Rock7 does, records them as the gateway's status.
 */
import t from 'tap';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { failCommits } from '../helpers/storage-faults.js';
import { adapterInfo, FAST_TIMING, openSerial, ptyPair } from '../adapters/iridium/harness.js';
import { IridiumSimulator } from '../../adapters/iridium/simulator.js';
import { serialPortIo } from '../../adapters/iridium/at-transport.js';
import { creditsFor } from '../../adapters/iridium/codec.js';
import { moKind } from '../../adapters/iridium/mo-ack.js';
import { decodeStorageStatus } from '../../adapters/iridium/mo-storage.js';
import type { LevelStore } from '../../storage/level/level-store.js';
import { pino } from 'pino';
import { SatelliteLink } from '../../runtime/sync/satellite-link.js';
import { SatelliteDirectory, type SatelliteModem } from '../../runtime/sync/satellite.js';
import { syncSchema, type IridiumLinkConfig } from '../../runtime/sync/config.js';
import type { StorageReport } from '../../runtime/sync/link.js';
import { systemClock } from '../../core/clock.js';
import { postRockblock, rock7Keys, startTestCentral, transmitTime } from '../central/helpers.js';

const GW = 'buoy-9';
const IMEI = '300234010753371';
const TABLE = [{ id: 'tank.level', decimals: 2 }];
const DAILY_CREDITS = 4;
const ALARM_RESERVE = 2;

t.test('storage read-only and recovered: sent over the satellite from the alarm reserve, recorded by central', async (t) => {
  const keys = await rock7Keys(t);
  const central = await startTestCentral(t, {
    ingest: { rockblock: { verify: 'jwt', jwt: { publicKeyFile: keys.publicKeyFile } } },
    gateways: [{ id: GW, auth: { type: 'hmac', secret: 'buoy-9-hmac-secret-0123456789' }, iridium: { imei: IMEI, timeResolutionMs: 1000, datapoints: TABLE } }],
  });

  const { a, b } = await ptyPair(t);
  const sim = new IridiumSimulator(serialPortIo(await openSerial(t, b)), { echo: true, signal: 5, imei: IMEI });
  t.teardown(() => sim.close());
  const gw = await startTestGateway(t, {
    gateway: { id: GW },
    storage: { sync: false },
    datapoints: [{ id: 'tank.level', kind: 'sensor', type: 'number' }],
    adapters: [
      {
        id: 'sat',
        type: 'iridium',
        port: a,
        forward: false,
        datapoints: TABLE,
        budget: { dailyCredits: DAILY_CREDITS, alarmReserve: ALARM_RESERVE },
        timing: FAST_TIMING,
      },
    ],
    sync: {
      enabled: true,
      pollMs: 20,
      datapointsIntervalMs: 0,
      backoff: { initialMs: 50, maxMs: 200 },
      fallback: { afterMs: 300, intervalMs: 200 },
      links: [
        // The primary nobody answers: the site is on its satellite only.
        { name: 'central', type: 'http', url: 'http://127.0.0.1:1/api/ingest/batch', ackTimeoutMs: 300 },
        { name: 'sat', type: 'iridium', adapter: 'sat', messageBytes: 50 },
      ],
    },
  });
  const sync = gw.gateway.sync!;
  const storageMessages = () => sim.received.filter((m) => moKind(m.bytes) === 'storage');
  const credits = async (): Promise<number> => (await adapterInfo(gw, 'sat')).creditsToday!;

  // ---- latest values spend their share of the day ----
  let k = 0;
  const feeder = setInterval(() => {
    k++;
    void gw.gateway.ingest.acceptMany('test', [{ id: 'tank.level', v: 1 + k / 100, t: Date.now() }]);
  }, 150);
  t.teardown(() => clearInterval(feeder));
  await eventually(async () => /budget/.test((await sync.snapshot()).links.find((l) => l.name === 'sat')!.lastError ?? ''), 30_000, 50);
  clearInterval(feeder);
  await eventually(async () => (await credits()) === DAILY_CREDITS - ALARM_RESERVE, 5000);
  t.equal(storageMessages().length, 0, 'no storage state sent while storage is fine');
  const readingsSent = sim.received.length;
  t.ok(readingsSent >= 1, `${readingsSent} readings message(s) spent ${DAILY_CREDITS - ALARM_RESERVE} credits: only the alarm reserve is left`);

  // ---- the disk fills: the next commit fails, storage goes read-only ----
  failCommits(gw.gateway.store as LevelStore, { once: true });
  const failedAt = Date.now();
  await t.rejects(gw.gateway.store.write([{ id: 'tank.level', t: Date.now(), v: 9 }]));
  await eventually(() => storageMessages().length >= 1, 15_000, 50);
  const alarm = storageMessages()[0]!;
  const readOnly = decodeStorageStatus(alarm.bytes);
  t.match(readOnly, { state: 'read-only', error: /^No space l.*injected write failure\)$/ }, 'the read-only state went over the satellite');
  t.ok(readOnly.since >= failedAt - 1000 && readOnly.since <= Date.now(), 'since when');
  t.equal(sim.received.indexOf(alarm), readingsSent, 'the next message after the budget was spent');
  t.equal(creditsFor(alarm.bytes.length), 1, `one credit (${alarm.bytes.length} bytes)`);
  await eventually(async () => (await credits()) === DAILY_CREDITS - ALARM_RESERVE + 1, 5000);
  t.pass('paid from the alarm reserve');

  // ---- storage recovers (the store reopens once there is room): the recovery goes too ----
  await eventually(() => storageMessages().length >= 2, 30_000, 100);
  const recovery = decodeStorageStatus(storageMessages()[1]!.bytes);
  t.equal(recovery.state, 'ok', 'the recovery went over the satellite');
  t.ok(recovery.since > readOnly.since);
  await eventually(async () => (await credits()) === DAILY_CREDITS, 5000);
  t.pass('the last credit of the reserve');
  await new Promise((r) => setTimeout(r, 500));
  t.equal(sim.received.length, readingsSent + 2, 'nothing else was sent: the budget is spent, reserve included');

  // ---- Rock7 delivers the messages to central's webhook ----
  const deliver = (mo: { momsn: number; bytes: Buffer }) =>
    postRockblock(
      central.url,
      { imei: IMEI, serial: '12345', momsn: String(mo.momsn), transmit_time: transmitTime(Date.now()), data: mo.bytes.toString('hex') },
      keys.privateKey,
    );
  let res = await deliver(alarm);
  t.match(res, { status: 200, body: { ok: true, gateway: GW, kind: 'storage', recorded: true } });
  let summary = (await central.get(`/api/gateways/${GW}`)).body;
  t.same(summary.status.storage, readOnly, 'GET /api/gateways/:gw shows the storage alarm');
  t.equal(summary.status.via, 'rockblock');
  t.equal(summary.state, 'satellite', 'the site is seen on its satellite');

  res = await deliver(storageMessages()[1]!);
  t.match(res, { status: 200, body: { kind: 'storage', storage: { state: 'ok' }, recorded: true } });
  summary = (await central.get(`/api/gateways/${GW}`)).body;
  t.same(summary.status.storage, recovery, 'and its recovery');

  // Rock7 redelivers a message until it gets a 200: an older state arriving late changes nothing.
  res = await deliver(alarm);
  t.match(res, { status: 200, body: { kind: 'storage', recorded: false } });
  t.same((await central.get(`/api/gateways/${GW}`)).body.status.storage, recovery, 'a late copy of the alarm does not undo the recovery');

  // ---- bad messages: a clear 400 ----
  res = await deliver({ momsn: 900, bytes: Buffer.from([4, 1]) });
  t.match(res, { status: 400, body: { error: { code: 'CENTRAL_SATELLITE_INVALID', message: /truncated/ } } }, 'a truncated storage state');
  res = await deliver({ momsn: 901, bytes: Buffer.from([9, 0, 0]) });
  t.match(res, { status: 400, body: { error: { code: 'CENTRAL_SATELLITE_INVALID', message: /kind 9 is not .*storage state \(4\)/ } } }, 'an unknown kind');
});

t.test('the link hands each storage state to a modem once, and tells the first one after a start that nothing was reported', async (t) => {
  const config = syncSchema.parse({
    enabled: true,
    links: [
      { name: 'central', type: 'http', url: 'http://127.0.0.1:1/api/ingest/batch' },
      { name: 'sat', type: 'iridium', adapter: 'sat' },
    ],
  }).links[1] as IridiumLinkConfig;
  const told: Array<StorageReport | undefined> = [];
  const modem = {
    state: 'idle',
    forwarding: false,
    onState: () => () => undefined,
    setCommandSink: () => () => undefined,
    reportStorage: async (s: StorageReport | undefined) => void told.push(s),
  } as unknown as SatelliteModem;
  const directory = new SatelliteDirectory();
  const newLink = () => new SatelliteLink({ config, gatewayId: GW, log: pino({ level: 'silent' }), clock: systemClock, directory });
  const link = newLink();
  await link.start();
  t.teardown(() => link.stop());
  const readOnly: StorageReport = { state: 'read-only', error: 'disk full', since: Date.now() };
  link.reportStorage(readOnly);
  t.same(told, [], 'no modem yet: kept');
  const unregister = directory.register(GW, 'sat', modem);
  t.same(told, [readOnly], 'handed over once the adapter runs');
  const ok: StorageReport = { state: 'ok', since: Date.now() + 1 };
  link.reportStorage(ok);
  t.same(told, [readOnly, ok], 'at once while it runs');
  unregister();
  const again = directory.register(GW, 'sat', modem);
  t.same(told, [readOnly, ok], 'an adapter restart is not told again (its queue kept what it was told)');
  await link.stop();

  // The gateway restarts, storage fine: the first modem is told that nothing was reported.
  const restarted = newLink();
  await restarted.start();
  t.teardown(() => restarted.stop());
  t.same(told, [readOnly, ok, undefined], 'so a read-only state it kept from before the restart is not sent as current');
  again();
  directory.register(GW, 'sat', modem);
  t.equal(told.length, 3, 'once');
});
