import t from 'tap';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { Mosquitto } from './helpers/mosquitto.js';
import { Receiver } from './helpers/receiver.js';
import { openSerial, ptyPair } from '../adapters/iridium/harness.js';
import { IridiumSimulator } from '../../adapters/iridium/simulator.js';
import { serialPortIo } from '../../adapters/iridium/at-transport.js';
import { creditsFor, MoCodec, type CodecDatapoint, type Reading } from '../../adapters/iridium/codec.js';
import { encodeMt } from '../../adapters/iridium/mt.js';
import { decodeMoAck, moKind, type MtAck } from '../../adapters/iridium/mo-ack.js';
import type { OutboxRecord } from '../../storage/store.js';

const GW = 'buoy-7';
const SECRET = '8f1e2d3c4b5a69788796a5b4c3d2e1f0';
const T0 = Date.UTC(2025, 0, 1);
/** The codec table: the wire contract between the site and the central decoder. */
const TABLE = [
  { id: 'tank.level', decimals: 2 },
  { id: 'site.temp', decimals: 1 },
  { id: 'pump.power', decimals: 0 },
  { id: 'tank.overflow.alarm', type: 'boolean' as const },
  { id: 'pump.setpoint', decimals: 1 },
];
const codecTable: CodecDatapoint[] = TABLE.map((d) => ({ id: d.id, decimals: d.decimals ?? 0, type: d.type ?? 'number' }));
const DAILY_CREDITS = 16;
const ALARM_RESERVE = 3;

t.test(
  'Iridium as the sync fallback: priority data over the modem within budget, MT setpoint acknowledged, then backfill over MQTT without duplicates',
  async (t) => {
    const broker = await Mosquitto.create(t);
    const receiver = await Receiver.connect(t, broker.url, { clientId: 'central-iridium', clean: false });
    await broker.stop('SIGTERM');

    const { a, b } = await ptyPair(t);
    const sim = new IridiumSimulator(serialPortIo(await openSerial(t, b)), { echo: true, signal: 5 });
    t.teardown(() => sim.close());

    const gw = await startTestGateway(t, {
      gateway: { id: GW },
      storage: { sync: false },
      datapoints: [
        { id: 'tank.level', kind: 'sensor', type: 'number' },
        { id: 'site.temp', kind: 'sensor', type: 'number' },
        { id: 'pump.power', kind: 'sensor', type: 'number' },
        { id: 'tank.overflow.alarm', kind: 'sensor', type: 'boolean' },
        { id: 'site.note', kind: 'sensor', type: 'string' },
        { id: 'pump.setpoint', kind: 'actuator', type: 'number', min: 0, max: 100 },
      ],
      adapters: [
        {
          id: 'sat',
          type: 'iridium',
          port: a,
          forward: false,
          datapoints: TABLE,
          mt: { secret: SECRET },
          budget: { dailyCredits: DAILY_CREDITS, alarmReserve: ALARM_RESERVE },
          timing: { atMs: 500, startupMs: 3000, startupProbeMs: 200, sessionMs: 2000, sbdwbMs: 1000, sbdrbOkMs: 200, backoffInitialMs: 50, backoffMaxMs: 200 },
        },
      ],
      sync: {
        enabled: true,
        pollMs: 20,
        datapointsIntervalMs: 0,
        backoff: { initialMs: 50, maxMs: 200 },
        fallback: { afterMs: 1500, intervalMs: 300 },
        links: [
          { name: 'central', type: 'mqtt', url: broker.url, reconnectMs: 100 },
          { name: 'sat', type: 'iridium', adapter: 'sat', messageBytes: 100 },
        ],
      },
    });
    const sync = gw.gateway.sync!;
    const store = gw.gateway.store;
    const codec = new MoCodec({ datapoints: codecTable, timeResolutionMs: 1000 });
    const data = () => sim.received.filter((m) => moKind(m.bytes) === 'readings').map((m) => codec.decode(m.bytes));
    const acks = () => sim.received.filter((m) => moKind(m.bytes) === 'ack').flatMap((m) => decodeMoAck(m.bytes));

    // A day of readings while the primary is down: three sensors, an alarm, a bad reading,
    // and a string the compact codec cannot carry (it waits for the primary link).
    const points: Array<{ id: string; v: unknown; t: number; q?: 'bad' }> = [];
    for (let i = 0; i < 300; i++) points.push({ id: TABLE[i % 3]!.id, v: i % 3 === 0 ? 1 + i / 100 : i % 3 === 1 ? -5 + i / 10 : i * 10, t: T0 + i * 1000 });
    points.splice(150, 0, { id: 'tank.overflow.alarm', v: true, t: T0 + 150_500 });
    points.push({ id: 'pump.power', v: null, t: T0 + 400_000, q: 'bad' });
    points.push({ id: 'site.note', v: 'hatch open', t: T0 + 400_000 });
    await gw.gateway.ingest.acceptMany('test', points as never);
    t.equal(data().length, 0, 'nothing over the modem before the primary has been down for fallback.afterMs');

    // ---- fallback: alarms and latest values, with their outbox sequence numbers ----
    await eventually(() => data().length >= 1, 10_000);
    const outbox = new Map((await store.readOutbox(0, 100_000)).map((r) => [r.seq, r]));
    const first = data()[0]!;
    t.equal(first.version, 2, 'codec version 2: readings carry outbox sequence numbers');
    const checkAgainstOutbox = (r: Reading): void => {
      const original = outbox.get(r.seq!);
      if (!original) return void t.fail(`seq ${r.seq} is not an outbox record`);
      const q = codec.quantise(original as Reading);
      t.same({ id: r.id, t: r.t, v: r.v, q: r.q }, { id: q.id, t: q.t, v: q.v, q: q.q }, `seq ${r.seq} decodes to what was stored`);
    };
    for (const r of first.readings) checkAgainstOutbox(r);
    t.ok(
      first.readings.some((r) => r.id === 'tank.overflow.alarm' && r.v === true),
      'the alarm is in the first message',
    );
    t.ok(
      first.readings.some((r) => r.id === 'pump.power' && r.v === null && r.q === 'bad'),
      'so is the bad reading (the latest of pump.power)',
    );
    for (const id of ['tank.level', 'site.temp']) {
      const newest = points.filter((p) => p.id === id).at(-1)!;
      t.ok(
        first.readings.some((r) => r.id === id && r.t === newest.t),
        `the latest ${id} is in the first message`,
      );
    }
    t.notOk(
      first.readings.some((r) => r.id === 'site.note'),
      'strings stay for the primary link',
    );
    t.equal(first.readings.length, 5, 'the alarm, the bad reading and the last value of each sensor: nothing older is spent on the metered link');
    t.ok(sim.received[0]!.bytes.length <= 100, 'messageBytes honoured');
    let snap = await sync.snapshot();
    t.equal(snap.mode, 'fallback');
    t.equal(snap.acked, 0, 'the satellite does not move the cursor');

    // ---- MT downlink: an authenticated setpoint message, one op valid, one out of range ----
    const mt = encodeMt({ key: Buffer.from(SECRET, 'hex'), context: GW, datapoints: codecTable, commands: ['mailbox_check', 'send_now'] }, 1, [
      { kind: 'setpoint', id: 'pump.setpoint', v: 42.5 },
      { kind: 'setpoint', id: 'pump.setpoint', v: 500 },
    ]);
    sim.queueMt(mt);
    await eventually(() => acks().length === 1, 10_000);
    t.same(acks()[0], { counter: 1, results: ['ok', 'SETPOINT_OUT_OF_RANGE'] } satisfies MtAck, 'acknowledged over the modem with each result');
    t.equal(store.latest('pump.setpoint')?.v, 42.5, 'the valid setpoint was applied');
    snap = await sync.snapshot();
    t.same(snap.downlink, { ok: 1, refused: 1 }, 'through the sync downlink');
    t.ok(
      gw.logs.some((l) => l.msg === 'setpoint applied' && String(l.source).startsWith('upstream:iridium:sat')),
      'same path as any upstream setpoint',
    );
    t.notOk(
      gw.logs.some((l) => l.msg === 'MT setpoint applied'),
      'not applied a second time by the adapter',
    );
    // Forged and replayed MT messages never reach the downlink and get no acknowledgement.
    const forged = Buffer.from(mt);
    forged[4]! ^= 0x01;
    sim.queueMt(forged);
    await eventually(() => store.latest('sat.mt_refused')?.v === 1, 10_000);
    sim.queueMt(mt);
    await eventually(() => store.latest('sat.mt_refused')?.v === 2, 10_000);
    t.same((await sync.snapshot()).downlink, { ok: 1, refused: 1 }, 'nothing more reached the downlink');
    t.equal(acks().length, 1, 'and nothing more was acknowledged');

    // ---- budget: new values go out until latest values have spent theirs; then only alarms ----
    let v = 0;
    const feeder = setInterval(() => {
      v++;
      void gw.gateway.ingest.acceptMany('test', [{ id: 'tank.level', v: 2 + v / 100, t: T0 + 500_000 + v * 1000 }]);
    }, 150);
    t.teardown(() => clearInterval(feeder));
    await eventually(async () => /budget/.test((await sync.snapshot()).links.find((l) => l.name === 'sat')!.lastError ?? ''), 20_000);
    clearInterval(feeder);
    const sentBeforeAlarm = data().length;
    const creditsBeforeAlarm = store.latest('sat.credits_today')?.v as number;
    t.ok(
      creditsBeforeAlarm <= DAILY_CREDITS - ALARM_RESERVE,
      `latest values and the acknowledgement left the alarm reserve alone (${creditsBeforeAlarm} credits)`,
    );
    await gw.gateway.ingest.acceptMany('test', [{ id: 'tank.overflow.alarm', v: true, t: T0 + 900_000 }]);
    await eventually(() => data().length > sentBeforeAlarm, 10_000);
    const alarmOnly = data().at(-1)!;
    t.same(
      alarmOnly.readings.map((r) => [r.id, r.t, r.v]),
      [['tank.overflow.alarm', T0 + 900_000, true]],
      'the alarm reserve carries the alarm alone',
    );

    // Credits as the adapter counts them (persisted, published as sat.credits_today).
    const credits = (): number => store.latest('sat.credits_today')?.v as number;
    const alarmBytes = sim.received.at(-1)!.bytes.length;
    await eventually(() => credits() === creditsBeforeAlarm + creditsFor(alarmBytes));
    t.ok(credits() <= DAILY_CREDITS, `within the daily budget (${credits()} of ${DAILY_CREDITS} credits)`);
    t.ok(credits() >= sim.received.reduce((n, m) => n + creditsFor(m.bytes.length), 0), 'every MO message received was counted');
    const received = sim.received.length;
    await new Promise((r) => setTimeout(r, 800));
    t.equal(sim.received.length, received, 'nothing more is sent once the budget is spent');

    t.comment(
      `satellite: ${data().length} data messages (${data()
        .map((m) => m.readings.length)
        .join('/')} readings, ${sim.received.map((m) => m.bytes.length).join('/')} bytes), ${acks().length} ack, ${credits()} credits`,
    );
    const viaSatellite: OutboxRecord[] = data().flatMap((m) => m.readings.map((r) => ({ seq: r.seq!, id: r.id, t: r.t, v: r.v, ...(r.q ? { q: r.q } : {}) })));
    t.equal(new Set(viaSatellite.map((r) => r.seq)).size, viaSatellite.length, 'no record went twice over the metered link');
    for (const r of await store.readOutbox(0, 100_000)) outbox.set(r.seq, r);
    for (const r of viaSatellite) checkAgainstOutbox(r as Reading);

    // ---- primary back: everything backfills over MQTT; the receiver, which decoded the
    // satellite messages first, drops those records by sequence number ----
    receiver.dedupe.accept(GW, viaSatellite);
    await broker.start();
    const complete = async (): Promise<boolean> => {
      const last = store.stats().lastSeq;
      return receiver.records.length + viaSatellite.length === last && (await sync.snapshot()).backlogRecords === 0;
    };
    await eventually(complete, 20_000);
    const all = [...viaSatellite, ...receiver.records].map((r) => r.seq).sort((x, y) => x - y);
    t.same(
      all,
      Array.from({ length: store.stats().lastSeq }, (_, i) => i + 1),
      'every record exactly once at the receiver, both paths combined',
    );
    t.ok(receiver.duplicates >= viaSatellite.length, 'the satellite records came again in the backfill and were dropped');
    const note = receiver.records.find((r) => r.id === 'site.note');
    t.equal(note?.v, 'hatch open', 'what the modem could not carry arrived over the primary');
    snap = await sync.snapshot();
    t.equal(snap.mode, 'primary');
    const sat = snap.links.find((l) => l.name === 'sat')!;
    t.equal(sat.records, viaSatellite.length, 'link counters: records over the satellite');
    t.ok(sat.errors >= 1, 'the spent budget was counted as an error');
  },
);
