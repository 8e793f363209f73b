import t from 'tap';
import { connectAsync } from 'mqtt';
import type { AdapterType } from '../../runtime/adapter.js';
import iridium from '../../adapters/iridium/index.js';
import ocpp from '../../adapters/ocpp/index.js';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { drivenAdapter } from '../helpers/driven-adapter.js';
import { FAST_TIMING } from './iridium/harness.js';

// Adapters that subscribe to datapoint topics take them from the gateway (`ctx.topics`,
// built from `broker.prefix`): a non-default prefix must not silently cut them off.

t.test('OCPP load management hears its site meter under a non-default broker.prefix', async (t) => {
  const meter = drivenAdapter('prefix-test-meter', 'site meter driven by the test', async (ctx) => {
    await ctx.datapoints.register({ id: 'site.meter.current', type: 'number', unit: 'A' });
  });
  const gw = await startTestGateway(
    t,
    {
      broker: { prefix: 'site7' },
      adapters: [
        { id: 'meter', type: 'prefix-test-meter' },
        {
          id: 'chargers',
          type: 'ocpp',
          chargers: [{ id: 'A', securityProfile: 0 }],
          loadManagement: { limitA: 32, meter: { datapoint: 'site.meter.current', unit: 'A', staleAfterMs: 60_000 } },
        },
      ],
    },
    { types: [meter.type, ocpp as unknown as AdapterType] },
  );
  const triggers: string[] = [];
  const client = await connectAsync(gw.mqttUrl, { reconnectPeriod: 0 });
  t.teardown(() => client.endAsync());
  client.on('message', (_topic, payload) => triggers.push((JSON.parse(payload.toString()) as { v: { trigger: string } }).v.trigger));
  await client.subscribeAsync('site7/dp/ev.site.charging_plan/value');
  await meter.ctx!.bus.publishValue('site.meter.current', 12);
  await eventually(() => triggers.includes('site meter reading'), 5000);
  t.pass('the meter reading on site7/dp/site.meter.current/value reached the load manager');
  t.notOk(
    gw.logs.some((l) => l.msg === 'busPrefix is ignored: the site meter topic follows broker.prefix'),
    'no warning without a busPrefix',
  );
});

t.test('Iridium stand-alone forwarding follows a non-default broker.prefix', async (t) => {
  const gw = await startTestGateway(
    t,
    {
      broker: { prefix: 'site7' },
      adapters: [
        {
          id: 'sat',
          type: 'iridium',
          port: `/dev/iridium-prefix-${process.pid}`,
          simulator: { signal: 3, sessionDelayMs: 0 },
          // A stale option from an older config: accepted, ignored, warned about.
          topicPrefix: 'outpost',
          datapoints: [{ id: 'tank.alarm', type: 'boolean', alarm: true }],
          timing: FAST_TIMING,
        },
      ],
    },
    { types: [iridium as unknown as AdapterType] },
  );
  await eventually(() => gw.gateway.store.latest('sat.link_state')?.v === 'idle');
  t.ok(
    gw.logs.some((l) => l.msg === 'topicPrefix is ignored: the topics follow broker.prefix'),
    'the stale topicPrefix is warned about',
  );
  const client = await connectAsync(gw.mqttUrl, { reconnectPeriod: 0 });
  t.teardown(() => client.endAsync());
  await client.publishAsync('site7/dp/tank.alarm/value', JSON.stringify({ v: true, t: Date.now() }), { qos: 1 });
  // The alarm went out through a (simulated) SBD session: it was heard on the site7 topic.
  await eventually(() => gw.gateway.store.latest('sat.credits_today')?.v === 1, 8000);
  t.pass('the alarm published under site7/ was forwarded');
});
