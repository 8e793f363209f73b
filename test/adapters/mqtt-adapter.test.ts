import t from 'tap';
import mqtt from 'mqtt';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { datapointIdFor, extractValue } from '../../adapters/mqtt/mapping.js';

t.test('mapping: ids from topic levels, values from paths', async (t) => {
  const m = { topic: 'tele/+/SENSOR', datapoint: 'plug.{1}.power', path: 'ENERGY.Power', scale: 1 };
  t.equal(datapointIdFor(m, 'tele/Kitchen Plug/SENSOR'), 'plug.kitchen_plug.power');
  t.equal(datapointIdFor(m, 'tele/a/b/SENSOR'), undefined);
  t.equal(extractValue(m, Buffer.from('{"Time":"2026-01-01T00:00:00","ENERGY":{"Power":42}}')), 42);
  t.throws(() => extractValue(m, Buffer.from('{"ENERGY":{}}')), /no "ENERGY.Power"/);
  t.throws(() => extractValue(m, Buffer.from('garbage')), /not JSON/);
  const plain = { topic: 'x/+', datapoint: 'x.{1}', scale: 0.001 };
  t.equal(extractValue(plain, Buffer.from('1500')), 1.5, 'numeric text, scaled');
  t.equal(extractValue(plain, Buffer.from('ON')), true);
  t.equal(extractValue(plain, Buffer.from('off')), false);
  t.equal(extractValue(plain, Buffer.from('idle')), 'idle');
});

t.test('Tasmota- and Shelly-style devices become datapoints; bad messages are not stored', async (t) => {
  const gw = await startTestGateway(t, {
    adapters: [
      {
        id: 'plugs',
        type: 'mqtt',
        mappings: [
          { topic: 'tele/+/SENSOR', datapoint: 'plug.{1}.power', path: 'ENERGY.Power', unit: 'W' },
          { topic: 'shellies/+/relay/0', datapoint: 'shelly.{1}.on', type: 'boolean' },
        ],
      },
    ],
  });
  const device = await mqtt.connectAsync(gw.mqttUrl, { reconnectPeriod: 0 });
  t.teardown(() => device.endAsync());
  await device.publishAsync('tele/fridge/SENSOR', JSON.stringify({ ENERGY: { Power: 87 } }), { qos: 1 });
  await device.publishAsync('shellies/pump1/relay/0', 'on', { qos: 1 });
  await device.publishAsync('tele/fridge/SENSOR', 'not json at all', { qos: 1 });
  await device.publishAsync('tele/fridge/SENSOR', JSON.stringify({ ENERGY: { Power: 'lots' } }), { qos: 1 });
  await device.publishAsync('tele/fridge/SENSOR', JSON.stringify({ ENERGY: { Power: 90 } }), { qos: 1 });
  await eventually(async () => (await gw.gateway.store.query('plug.fridge.power', {})).length === 2);
  t.same(
    (await gw.gateway.store.query('plug.fridge.power', {})).map((p) => p.v),
    [87, 90],
  );
  t.match(gw.gateway.registry.get('plug.fridge.power'), { adapter: 'plugs', unit: 'W', meta: { topic: 'tele/+/SENSOR' } });
  await eventually(() => gw.gateway.store.latest('shelly.pump1.on')?.v === true);
  const warnings = gw.logs.filter((l) => l.msg && String(l.msg).startsWith('mapped MQTT message not stored'));
  t.equal(warnings.length, 2, 'each kind of bad message is logged once');

  // Mapped datapoints belong to the adapter: nobody may overwrite them on the outpost topic.
  const errors: string[] = [];
  device.on('message', (topic) => errors.push(topic));
  await device.subscribeAsync('outpost/dp/+/error');
  await device.publishAsync('outpost/dp/plug.fridge.power/value', '{"v": 1}', { qos: 1 });
  await eventually(() => errors.length === 1);
  t.equal(gw.gateway.store.latest('plug.fridge.power')?.v, 90);
});
