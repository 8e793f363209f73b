import t from 'tap';
import { connectAsync } from 'mqtt';
import iridium from '../../../adapters/iridium/index.js';
import { creditsFor, MoCodec } from '../../../adapters/iridium/codec.js';
import { IridiumSimulator } from '../../../adapters/iridium/simulator.js';
import { serialPortIo } from '../../../adapters/iridium/at-transport.js';
import { eventually, startTestGateway } from '../../helpers/gateway.js';
import type { AdapterType } from '../../../runtime/adapter.js';
import { FAST_TIMING, openSerial, ptyPair } from './harness.js';
import type { Teardown } from '../../helpers/teardown.js';

const datapoints = [
  { id: 'tank.level', decimals: 2 },
  { id: 'tank.temp', decimals: 1 },
];
const codecTable = datapoints.map((d) => ({ ...d, type: 'number' as const }));
const FAST = { ...FAST_TIMING, signalRetryMs: 100 };

async function site(t: Teardown, signal: number) {
  const { a, b } = await ptyPair(t);
  const sim = new IridiumSimulator(serialPortIo(await openSerial(t, b)), { echo: true, signal });
  t.teardown(() => sim.close());
  const gw = await startTestGateway(
    t,
    {
      gateway: { id: 'hut-1' },
      adapters: [{ id: 'sat', type: 'iridium', port: a, datapoints, sendIntervalMs: 1000, budget: { dailyCredits: 50 }, timing: FAST }],
    },
    { types: [iridium as unknown as AdapterType] },
  );
  const client = await connectAsync(gw.mqttUrl);
  t.teardown(() => client.endAsync());
  const publish = (id: string, v: number, at: number) => client.publishAsync(`outpost/dp/${id}/value`, JSON.stringify({ v, t: at }), { qos: 1 });
  const codec = new MoCodec({ timeResolutionMs: 1000, datapoints: codecTable });
  return { sim, gw, publish, decoded: () => sim.received.flatMap((m) => codec.decode(m.bytes).readings) };
}

// Issue 22: newest values and history went as two messages every send interval.
t.test('one send interval: newest values and history in one message', async (t) => {
  const { sim, gw, publish, decoded } = await site(t, 5);
  await eventually(() => gw.gateway.store.latest('sat.link_state')?.v === 'idle');
  const t0 = Math.floor(Date.now() / 1000) * 1000 - 60_000;
  for (let i = 0; i < 3; i++) {
    await publish('tank.level', 1 + i / 10, t0 + i * 10_000);
    await publish('tank.temp', 20 + i, t0 + i * 10_000);
  }
  await eventually(() => decoded().length >= 6, 8000);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(sim.received.length, 1, 'one message for the interval');
  t.equal(gw.gateway.store.latest('sat.credits_today')?.v, 1, 'one credit');
});

// Issue 22: after an outage every waiting newest-values message cost its own credit.
t.test('after an outage of several send intervals: one message, the newest value of each datapoint and the history', async (t) => {
  const { sim, gw, publish, decoded } = await site(t, 0);
  await eventually(() => gw.gateway.store.latest('sat.signal')?.v === 0);
  const t0 = Math.floor(Date.now() / 1000) * 1000 - 60_000;
  const rounds = 4;
  for (let i = 0; i < rounds; i++) {
    await publish('tank.level', 1 + i / 10, t0 + i * 10_000);
    await publish('tank.temp', 20 + i, t0 + i * 10_000);
    await new Promise((r) => setTimeout(r, 1200)); // a send interval passes: a flush with no satellite
  }
  t.equal(sim.received.length, 0, 'nothing could go during the outage');
  sim.signal = 5;
  await eventually(() => gw.gateway.store.latest('sat.queue')?.v === 0 && sim.received.length > 0, 8000);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(sim.received.length, 1, `one message, not one per interval (${sim.received.length})`);
  const bytes = sim.received.reduce((n, m) => n + m.bytes.length, 0);
  t.equal(gw.gateway.store.latest('sat.credits_today')?.v, creditsFor(bytes), `one message's credits (${bytes} bytes)`);
  const got = decoded();
  t.same(
    got.filter((r) => r.id === 'tank.level').map((r) => r.v),
    [1, 1.1, 1.2, 1.3],
    'every level reading, the newest among them',
  );
  t.same(
    got.filter((r) => r.id === 'tank.temp').map((r) => r.v),
    [20, 21, 22, 23],
    'every temperature reading',
  );
});
