import t from 'tap';
import { connectAsync } from 'mqtt';
import iridium from '../../../adapters/iridium/index.js';
import { MoCodec } from '../../../adapters/iridium/codec.js';
import { encodeMt } from '../../../adapters/iridium/mt.js';
import { IridiumSimulator } from '../../../adapters/iridium/simulator.js';
import { serialPortIo } from '../../../adapters/iridium/at-transport.js';
import { eventually, startTestGateway } from '../../helpers/gateway.js';
import type { AdapterType } from '../../../runtime/adapter.js';
import { FAST_TIMING, adapterInfo, openSerial, ptyPair } from './harness.js';

const SECRET = '8f1e2d3c4b5a69788796a5b4c3d2e1f0';
const datapoints = [
  { id: 'tank.level', decimals: 2 },
  { id: 'tank.overflow', type: 'boolean' as const, alarm: true },
];
const codecTable = datapoints.map((d) => ({ id: d.id, decimals: d.decimals ?? 0, type: d.type ?? ('number' as const) }));

/** Waits until the simulated modem has had no new session for `quietMs`. */
async function settle(sim: IridiumSimulator, quietMs = 500): Promise<void> {
  let n = -1;
  while (n !== sim.sessions.length) {
    n = sim.sessions.length;
    await new Promise((r) => setTimeout(r, quietMs));
  }
}

// Issue 22, as reported: with dailyCredits 30 and alarmReserve 3, forged MT messages queued
// at the Iridium gateway (anyone who knows the IMEI can) and their ring alerts spent the day,
// and an alarm then waited in `link_state: budget`.
t.test('stand-alone on a real pty: a flood of forged MT rings leaves the alarm reserve alone; counted in status, metrics and datapoints', async (t) => {
  const { a, b } = await ptyPair(t);
  const sim = new IridiumSimulator(serialPortIo(await openSerial(t, b)), { echo: true, signal: 5 });
  t.teardown(() => sim.close());
  const gw = await startTestGateway(
    t,
    {
      gateway: { id: 'buoy-9' },
      adapters: [
        {
          id: 'sat',
          type: 'iridium',
          port: a,
          datapoints,
          sendIntervalMs: 3_600_000,
          mt: { secret: SECRET },
          budget: { dailyCredits: 30, alarmReserve: 3 },
          timing: FAST_TIMING,
        },
      ],
    },
    { types: [iridium as unknown as AdapterType] },
  );
  const latest = (id: string): unknown => gw.gateway.store.latest(id)?.v;
  await eventually(() => latest('sat.link_state') === 'idle');

  // Signed with a key that is not the site's: refused, but every fetch is billed all the same.
  const forged = encodeMt({ key: Buffer.alloc(16, 7), context: 'buoy-9', datapoints: codecTable, commands: ['mailbox_check'] }, 1, [
    { kind: 'command', name: 'mailbox_check' },
  ]);
  for (let i = 0; i < 20; i++) sim.queueMt(forged);
  await settle(sim);
  for (let i = 0; i < 4; i++) {
    sim.ring(); // the gateway keeps ringing while MT waits
    await settle(sim);
  }
  const spent = latest('sat.credits_today') as number;
  t.ok(spent <= 6, `rings spent ${spent} of 30 credits: no more than the default MT share (6)`);
  t.equal(latest('sat.mt_credits_today'), spent, 'shown as MT spend');

  const client = await connectAsync(gw.mqttUrl);
  t.teardown(() => client.endAsync());
  await client.publishAsync('outpost/dp/tank.overflow/value', JSON.stringify({ v: true, t: Date.now() }), { qos: 1 });
  const codec = new MoCodec({ timeResolutionMs: 1000, datapoints: codecTable });
  const alarmSent = () => sim.received.some((m) => codec.decode(m.bytes).readings.some((r) => r.id === 'tank.overflow' && r.v === true));
  await eventually(alarmSent, 8000);
  t.pass('the alarm went out');

  // The flood is visible: datapoints (dashboard), status info (outpost_adapter_info on /metrics), status message.
  t.ok((latest('sat.ring_alerts') as number) >= 5, `sat.ring_alerts = ${latest('sat.ring_alerts')}`);
  t.ok((latest('sat.rings_deferred') as number) >= 4, `sat.rings_deferred = ${latest('sat.rings_deferred')}`);
  const info = await eventually(async () => {
    const i = await adapterInfo(gw, 'sat');
    return i.ringsDeferred >= 4 ? i : undefined;
  });
  t.ok(info!.ringAlerts >= 5, 'outpost_adapter_info{key="ringAlerts"}');
  t.ok(info!.creditsMtToday >= 1, 'outpost_adapter_info{key="creditsMtToday"}');
  const status = (await (await fetch(`${gw.httpUrl}/api/adapters`)).json()) as { items: Array<{ id: string; message?: string }> };
  t.match(status.items.find((x) => x.id === 'sat')?.message, /ring alert\(s\) deferred/);
});
