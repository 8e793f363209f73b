import t from 'tap';
import { connectAsync } from 'mqtt';
import iridium from '../../../adapters/iridium/index.js';
import { MoCodec } from '../../../adapters/iridium/codec.js';
import { encodeMt, type MtFormat } from '../../../adapters/iridium/mt.js';
import { IridiumSimulator } from '../../../adapters/iridium/simulator.js';
import { serialPortIo } from '../../../adapters/iridium/at-transport.js';
import { eventually, startTestGateway } from '../../helpers/gateway.js';
import type { AdapterType } from '../../../runtime/adapter.js';
import { openSerial, ptyPair } from './harness.js';

const SECRET = '8f1e2d3c4b5a69788796a5b4c3d2e1f0';
const datapoints = [
  { id: 'site.hvac.setpoint', decimals: 1, forward: false },
  { id: 'tank.level', decimals: 2 },
  { id: 'tank.overflow', type: 'boolean' as const, alarm: true },
];

t.test('stand-alone adapter on a real pty: status datapoints, forwarding, authenticated MT setpoints', async (t) => {
  const { a, b } = await ptyPair(t);
  const device = await openSerial(t, b);
  const sim = new IridiumSimulator(serialPortIo(device), { echo: true, signal: 5 });
  t.teardown(() => sim.close());

  const gw = await startTestGateway(
    t,
    {
      gateway: { id: 'buoy-7' },
      adapters: [
        { id: 'site', type: 'simulated', interval: 60_000 },
        {
          id: 'sat',
          type: 'iridium',
          port: a,
          datapoints,
          sendIntervalMs: 1000,
          mt: { secret: SECRET },
          // Four MT fetches below: more than the default MT share (budget.mtCreditsPerDay) allows.
          budget: { dailyCredits: 100, mtCreditsPerDay: 20 },
          timing: { atMs: 500, startupMs: 3000, startupProbeMs: 200, sessionMs: 2000, sbdwbMs: 1000, sbdrbOkMs: 200, backoffInitialMs: 50, backoffMaxMs: 200 },
        },
      ],
    },
    { types: [iridium as unknown as AdapterType] },
  );
  const latest = async (id: string) => {
    const res = await fetch(`${gw.httpUrl}/api/datapoints/${id}`);
    if (res.status !== 200) return undefined;
    return ((await res.json()) as { latest?: { v: unknown } }).latest?.v;
  };
  await eventually(async () => (await latest('sat.link_state')) === 'idle');
  await eventually(async () => (await latest('sat.signal')) === 5);
  t.equal(await latest('sat.credits_today'), 0);

  const client = await connectAsync(gw.mqttUrl);
  t.teardown(() => client.endAsync());

  // An authentic MT message arrives with a ring alert: setpoint on the bus.
  const format: MtFormat = {
    key: Buffer.from(SECRET, 'hex'),
    context: 'buoy-7',
    datapoints: datapoints.map((d) => ({ id: d.id, decimals: d.decimals ?? 0, type: d.type ?? 'number' })),
    commands: ['mailbox_check', 'send_now'],
  };
  const genuine = encodeMt(format, 1, [{ kind: 'setpoint', id: 'site.hvac.setpoint', v: 21.5 }]);
  sim.queueMt(genuine);
  // Applied through the runtime's setpoint path: validated and handed to the owning adapter.
  await eventually(() => gw.gateway.store.latest('site.hvac.setpoint')?.v === 21.5);
  t.ok(gw.logs.some((l) => l.msg === 'MT setpoint applied' && l.id === 'site.hvac.setpoint'));
  // An authentic command with an out-of-range value is refused by the same validation as a local write.
  sim.queueMt(encodeMt(format, 2, [{ kind: 'setpoint', id: 'site.hvac.setpoint', v: 99 }]));
  await eventually(() => gw.logs.some((l) => l.msg === 'MT setpoint refused' && l.code === 'SETPOINT_OUT_OF_RANGE'));
  t.equal(gw.gateway.store.latest('site.hvac.setpoint')?.v, 21.5);
  t.equal(sim.sessions[0]?.command, 'AT+SBDIXA', 'ring alert answered');

  // Forged and replayed messages are refused, counted and logged without the key.
  const forged = Buffer.from(genuine);
  forged[3]! ^= 0xff;
  sim.queueMt(forged);
  await eventually(async () => (await latest('sat.mt_refused')) === 1);
  sim.queueMt(genuine);
  await eventually(async () => (await latest('sat.mt_refused')) === 2);
  t.equal(gw.logs.filter((l) => l.msg === 'MT setpoint applied').length, 1, 'nothing applied for refused messages');
  const refusals = gw.logs.filter((l) => l.msg === 'MT message refused');
  t.same(
    refusals.map((l) => l.reason),
    ['forged', 'replayed'],
  );
  t.notOk(JSON.stringify(gw.logs).includes(SECRET), 'the key never reaches the log');

  // Readings published on the bus are forwarded in the compact format.
  const t0 = Date.now() - 60_000;
  for (let i = 0; i < 5; i++) await client.publishAsync('outpost/dp/tank.level/value', JSON.stringify({ v: 1.5 + i / 100, t: t0 + i * 10_000 }), { qos: 1 });
  const codec = new MoCodec({ timeResolutionMs: 1000, datapoints: format.datapoints });
  // The send timer may split the five readings over more than one message.
  const forwarded = () =>
    sim.received.flatMap((m) =>
      codec
        .decode(m.bytes)
        .readings.filter((r) => r.id === 'tank.level')
        .map((r) => r.v),
    );
  await eventually(() => forwarded().length >= 5, 8000);
  // The newest reading of a batch goes first (as `latest`), so compare as a set.
  t.same([...forwarded()].sort(), [1.5, 1.51, 1.52, 1.53, 1.54]);
  await eventually(async () => ((await latest('sat.credits_today')) as number) >= 1);

  // The API the sync link will use.
  const link = gw.gateway.services.get('iridium-link', 'sat');
  t.ok(link, 'link registered');
  const results = await link!.sendReadings([{ id: 'tank.overflow', t: Date.now(), v: true }], 'alarm');
  t.equal(results.length, 1);
  t.equal(codec.decode(sim.received[sim.received.length - 1]!.bytes).readings[0]?.v, true);
  t.ok(link!.codec.has('tank.level'));
  await t.rejects(link!.send(Buffer.alloc(400)), { code: 'IRIDIUM_MO_SIZE' });
});

t.test('start fails (and is retried by the host) when no modem answers', async (t) => {
  const { a } = await ptyPair(t);
  const gw = await startTestGateway(
    t,
    { adapters: [{ id: 'sat', type: 'iridium', port: a, timing: { atMs: 100, startupMs: 300, startupProbeMs: 50 } }] },
    { types: [iridium as unknown as AdapterType] },
  );
  await eventually(() => gw.logs.some((l) => l.msg === 'adapter failed' && JSON.stringify(l).includes('did not answer AT')));
  t.pass('start-up timeout reported');
});

t.test('config errors name the path', async (t) => {
  const bad = iridium.schema.safeParse({ port: '/dev/x', mt: { secret: 'short' } });
  t.notOk(bad.success);
  t.match(JSON.stringify(bad.error?.issues), /secret/);
  t.notOk(iridium.schema.safeParse({ port: '/dev/x', datapoints: [{ id: 'Bad Id' }] }).success);
  t.notOk(iridium.schema.safeParse({ port: '/dev/x', typo: 1 }).success);
  t.ok(iridium.schema.safeParse({ port: '/dev/x' }).success);
});
