import t from 'tap';
import mqtt from 'mqtt';
import type { AdapterType } from '../../../runtime/adapter.js';
import ocpp from '../../../adapters/ocpp/index.js';
import { startTestGateway, eventually } from '../../helpers/gateway.js';
import { ChargePointSimulator } from '../../../adapters/ocpp/simulator.js';
import type { Plan } from '../../../adapters/ocpp/load-manager.js';
import { drivenAdapter } from '../../helpers/driven-adapter.js';

/** A site meter adapter the test drives: one datapoint, the current on the most loaded phase. */
const siteMeter = drivenAdapter('test-site-meter', 'site meter driven by the test', async (ctx) => {
  await ctx.datapoints.register({ id: 'site.meter.current', type: 'number', unit: 'A', description: 'site current, most loaded phase' });
});

t.test('three chargers under a 32 A site limit track a simulated site meter', async (t) => {
  const gw = await startTestGateway(
    t,
    {
      adapters: [
        { id: 'meter', type: 'test-site-meter' },
        {
          id: 'chargers',
          type: 'ocpp',
          chargers: [
            { id: 'A', securityProfile: 0 },
            { id: 'B', securityProfile: 0 },
            { id: 'C', securityProfile: 0 },
          ],
          idTags: { acceptUnknown: true },
          loadManagement: {
            limitA: 32,
            marginA: 0,
            fallbackA: 16,
            meter: { datapoint: 'site.meter.current', unit: 'A', staleAfterMs: 1500 },
            // The simulated cars follow at once: the loop's waits shortened so the test runs in seconds.
            control: { followMs: 200, settleTimeoutMs: 2000, increaseHoldMs: 300, minPauseMs: 1000, rampStepA: 32 },
          },
        },
      ],
    },
    { types: [siteMeter.type, ocpp as unknown as AdapterType] },
  );

  // Every plan the gateway makes, as published on the bus.
  const plans: Array<Plan & { trigger: string }> = [];
  const client = await mqtt.connectAsync(gw.mqttUrl);
  t.teardown(() => client.endAsync());
  client.on('message', (_topic, payload) => plans.push((JSON.parse(payload.toString()) as { v: Plan & { trigger: string } }).v));
  await client.subscribeAsync('outpost/dp/ev.site.charging_plan/value');

  const wsUrl = gw.httpUrl.replace(/^http/, 'ws') + '/ocpp';
  const sims = ['A', 'B', 'C'].map((identity) => new ChargePointSimulator({ endpoint: wsUrl, identity }));
  t.teardown(async () => {
    for (const s of sims) await s.close();
  });
  // What the chargers were told, by the latest TxProfile per charger.
  const told = new Map<string, number>();
  let worstTold = 0;
  for (const sim of sims) {
    const id = (sim as unknown as { opts: { identity: string } }).opts.identity;
    sim.onLimit = (_c, limitA) => {
      told.set(id, limitA);
      worstTold = Math.max(
        worstTold,
        [...told.values()].reduce((a, b) => a + b, 0),
      );
    };
    await sim.connect();
  }

  let otherLoadA = 0;
  const publishMeter = async (): Promise<void> => {
    const evA = sims.reduce((sum, s) => sum + s.connector(1).drawA, 0);
    await siteMeter.ctx!.bus.publishValue('site.meter.current', Math.round((otherLoadA + evA) * 10) / 10);
  };
  const step = async (): Promise<void> => {
    for (const s of sims) await s.tick(10_000);
    await publishMeter();
  };
  const latest = (): Plan & { trigger: string } => plans[plans.length - 1]!;
  const limitOf = (key: string): number | undefined => latest()?.allocations.find((a) => a.key === key)?.limitA;
  const settle = async (expect: Record<string, number>): Promise<void> => {
    await eventually(
      async () => {
        await step();
        return Object.entries(expect).every(([k, v]) => limitOf(k) === v && sims[['A/1', 'B/1', 'C/1'].indexOf(k)]!.connector(1).limitA === v);
      },
      8000,
      50,
    );
  };

  await publishMeter();
  await sims[0]!.startSession(1, 'TAG-A', { carMaxA: 32 });
  await settle({ 'A/1': 32 });
  await sims[1]!.startSession(1, 'TAG-B', { carMaxA: 32 });
  await settle({ 'A/1': 16, 'B/1': 16 });
  await sims[2]!.startSession(1, 'TAG-C', { carMaxA: 32 });
  await settle({ 'A/1': 10.6, 'B/1': 10.6, 'C/1': 10.6 });
  t.pass('three sessions share 32 A: 10.6 A each');

  otherLoadA = 14; // e.g. a heat pump starts: 18 A left = 3 × 6 A
  await settle({ 'A/1': 6, 'B/1': 6, 'C/1': 6 });
  otherLoadA = 20; // 12 A left: only two sessions can have 6 A, the latest pauses
  await settle({ 'A/1': 6, 'B/1': 6, 'C/1': 0 });
  t.match(latest().allocations.find((a) => a.key === 'C/1')!.reason, /paused: (needs 6 A|minimum pause|resumes with)/);
  await eventually(() => sims[2]!.connector(1).status === 'SuspendedEVSE');

  // The meter goes quiet: after staleAfterMs the plan falls back to 16 A for all EVs.
  otherLoadA = 0;
  const before = plans.length;
  await eventually(() => latest().meterState === 'stale', 8000);
  t.ok(plans.length > before);
  t.same(latest().availableA, [16, 16, 16]);
  t.equal(limitOf('A/1'), 8);
  t.equal(limitOf('B/1'), 8);
  t.equal(limitOf('C/1'), 0);
  await eventually(async () => {
    const s = (await (await fetch(`${gw.httpUrl}/api/adapters`)).json()) as { items: Array<{ id: string; degraded?: boolean }> };
    return s.items.find((a) => a.id === 'chargers')?.degraded === true;
  });
  t.pass('adapter status is degraded while the meter is stale');

  // Meter back, B leaves: A and C share again.
  await sims[1]!.stopSession(1);
  told.delete('B'); // its session is over: its last limit no longer draws anything
  await settle({ 'A/1': 16, 'C/1': 16 });

  const rest = await fetch(`${gw.httpUrl}/api/charging/plan`);
  const body = (await rest.json()) as { plan: Plan; meterState: string };
  t.equal(body.meterState, 'fresh');
  t.equal(body.plan.allocations.length, 2);

  // The invariant, over every plan made during the run.
  t.ok(plans.length >= 10, `many plans were made (${plans.length}), one per meter reading or status change`);
  for (const plan of plans) {
    for (const p of [0, 1, 2]) {
      const sum = plan.allocations.filter((a) => a.phases.includes(p as 0 | 1 | 2)).reduce((s, a) => s + a.limitA, 0);
      if (Math.round(sum * 10) > 320) t.fail(`plan "${plan.trigger}" gives ${sum} A on L${p + 1}`);
    }
  }
  t.ok(worstTold <= 32, `the chargers were never told more than 32 A in total (worst ${worstTold} A)`);
  t.pass(`checked ${plans.length} plans`);
});
