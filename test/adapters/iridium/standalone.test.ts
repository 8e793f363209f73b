import t from 'tap';
import { connectAsync } from 'mqtt';
import iridium from '../../../adapters/iridium/index.js';
import { MoCodec, type Reading } from '../../../adapters/iridium/codec.js';
import { encodeMt, type MtFormat } from '../../../adapters/iridium/mt.js';
import { IridiumSimulator } from '../../../adapters/iridium/simulator.js';
import { serialPortIo } from '../../../adapters/iridium/at-transport.js';
import { eventually, startTestGateway } from '../../helpers/gateway.js';
import type { AdapterType } from '../../../runtime/adapter.js';
import { FAST_TIMING, adapterInfo, openSerial, ptyPair } from './harness.js';

const SECRET = '00112233445566778899aabbccddeeff';
const datapoints = [
  { id: 'tank.level', decimals: 2 },
  { id: 'tank.temp', decimals: 1 },
];

t.test("status info in /metrics follows signal and spend; history rides free in the newest values' message, the rest waits for its share", async (t) => {
  const { a, b } = await ptyPair(t);
  const device = await openSerial(t, b);
  const sim = new IridiumSimulator(serialPortIo(device), { echo: true, signal: 3 });
  t.teardown(() => sim.close());

  const gw = await startTestGateway(
    t,
    {
      gateway: { id: 'pump-3' },
      adapters: [
        {
          id: 'sat',
          type: 'iridium',
          port: a,
          datapoints,
          // Only the MT "send_now" command below flushes: the batch is known when it is split.
          sendIntervalMs: 3_600_000,
          signalPollMs: 200,
          mt: { secret: SECRET },
          // History may use nothing (historyShare 0): only the `latest` message can go out.
          budget: { dailyCredits: 10, alarmReserve: 0, historyShare: 0 },
          timing: FAST_TIMING,
        },
      ],
    },
    { types: [iridium as unknown as AdapterType] },
  );
  const latest = async (id: string) => {
    const res = await fetch(`${gw.httpUrl}/api/datapoints/${id}`);
    if (res.status !== 200) return undefined;
    return ((await res.json()) as { latest?: { v: unknown; t: number } }).latest ?? undefined;
  };

  // Status info: signal and monthly spend are exported next to creditsToday and queued.
  await eventually(async () => (await latest('sat.link_state'))?.v === 'idle');
  let info = (await eventually(async () => {
    const i = await adapterInfo(gw, 'sat');
    return i.signal === 3 ? i : undefined;
  }))!;
  t.equal(info.creditsMonth, 0, 'outpost_adapter_info{key="creditsMonth"}');
  t.equal(info.creditsToday, 0);
  // Refreshed on a signal poll, without any state change.
  sim.signal = 1;
  await eventually(async () => (await adapterInfo(gw, 'sat')).signal === 1);
  t.equal((await latest('sat.link_state'))?.v, 'idle', 'no state change was needed to refresh the status');
  sim.signal = 5;
  await eventually(async () => (await adapterInfo(gw, 'sat')).signal === 5);

  // credits_today is republished on the poll timer (so it falls back to 0 after midnight without a session).
  const before = (await latest('sat.credits_today'))!;
  await eventually(async () => ((await latest('sat.credits_today'))?.t ?? 0) > before.t);
  t.equal((await latest('sat.credits_today'))?.v, 0);

  // Readings, not in time order: the newest of each datapoint is not the last published.
  const client = await connectAsync(gw.mqttUrl);
  t.teardown(() => client.endAsync());
  const t0 = Math.floor(Date.now() / 1000) * 1000 - 600_000;
  const published: Reading[] = [
    { id: 'tank.level', t: t0, v: 1.1 },
    { id: 'tank.level', t: t0 + 120_000, v: 1.3 }, // newest level
    { id: 'tank.temp', t: t0 + 60_000, v: 20.5 },
    { id: 'tank.level', t: t0 + 60_000, v: 1.2 },
    { id: 'tank.temp', t: t0 + 180_000, v: 21 }, // newest temp
    { id: 'tank.temp', t: t0 + 30_000, v: 20.1 },
  ];
  // More (older, irregular) history than fits in the rest of one 50-byte credit.
  for (let i = 0; i < 40; i++)
    published.push({ id: 'tank.level', t: t0 - 3_600_000 + i * 7_000 + (i % 3) * 1000, v: Math.round(((i * 37) % 101) * 1.7) / 100 });
  for (const r of published) await client.publishAsync(`outpost/dp/${r.id}/value`, JSON.stringify({ v: r.v, t: r.t }), { qos: 1 });

  // Flush now through an authenticated MT command (ring alert, SBDIXA, SBDRB).
  const format: MtFormat = {
    key: Buffer.from(SECRET, 'hex'),
    context: 'pump-3',
    datapoints: datapoints.map((d) => ({ ...d, type: 'number' as const })),
    commands: ['mailbox_check', 'send_now'],
  };
  sim.queueMt(encodeMt(format, 1, [{ kind: 'command', name: 'send_now' }]));

  const codec = new MoCodec({ timeResolutionMs: 1000, datapoints: format.datapoints });
  const decoded = () => sim.received.map((m) => codec.decode(m.bytes).readings.map((r) => ({ id: r.id, t: r.t, v: r.v })));
  await eventually(() => decoded().length >= 1, 8000);
  const first = decoded()[0]!;
  t.ok(sim.received[0]!.bytes.length <= 50, `one credit: ${sim.received[0]!.bytes.length} bytes`);
  t.ok(
    first.some((r) => r.id === 'tank.level' && r.t === t0 + 120_000 && r.v === 1.3),
    'newest level',
  );
  t.ok(
    first.some((r) => r.id === 'tank.temp' && r.t === t0 + 180_000 && r.v === 21),
    'newest temperature',
  );
  t.ok(first.length > 2, `history fills the rest of the paid credit: ${first.length} readings`);
  t.ok(first.length < published.length, 'but not more than that credit holds');
  // The rest is history, which this budget (historyShare 0) does not pay for.
  await eventually(async () => (await latest('sat.link_state'))?.v === 'budget');
  t.equal((await latest('sat.queue'))?.v, 1, 'the rest of the history waits in the queue');
  t.equal(sim.received.length, 1, 'no message for history alone');

  // The spend (MT fetch + latest message) shows in the status right after the `credits` event.
  const spent = (await latest('sat.credits_today'))!.v as number;
  t.equal(spent, 3, 'MT fetch (mailbox check + MT message) and one credit of readings');
  info = (await eventually(async () => {
    const i = await adapterInfo(gw, 'sat');
    return i.creditsToday === spent ? i : undefined;
  }))!;
  t.equal(info.creditsMonth, spent);
  t.equal(info.queued, 1);
});

t.test('simulator option: a simulated modem on the serialport mock binding, no hardware', async (t) => {
  const gw = await startTestGateway(
    t,
    {
      adapters: [
        {
          id: 'sat',
          type: 'iridium',
          port: `/dev/iridium-sim-${process.pid}`,
          simulator: { signal: 2, sessionDelayMs: 0 },
          datapoints: [{ id: 'tank.alarm', type: 'boolean', alarm: true }],
          timing: FAST_TIMING,
        },
      ],
    },
    { types: [iridium as unknown as AdapterType] },
  );
  await eventually(() => gw.gateway.store.latest('sat.signal')?.v === 2);
  t.equal(gw.gateway.store.latest('sat.link_state')?.v, 'idle');
  // An alarm goes through a full (simulated) SBD session and is paid for.
  const client = await connectAsync(gw.mqttUrl);
  t.teardown(() => client.endAsync());
  await client.publishAsync('outpost/dp/tank.alarm/value', JSON.stringify({ v: true, t: Date.now() }), { qos: 1 });
  await eventually(() => gw.gateway.store.latest('sat.credits_today')?.v === 1);
  await client.endAsync();
  await gw.stop();
  t.notOk(
    gw.logs.some((l) => (l.level as number) >= 50),
    'stopped without errors',
  );
});
