/**
 * `alarm.ack` from upstream (issue 26 item 2): a real gateway (in process, real storage and
 * alarm engine) with an MQTT sync link on Mosquitto. An acknowledgement published on
 * `<root>/cmd/alarm.ack` goes through the alarm engine's own acknowledge — the alarm shows it,
 * with `upstream:<link>` as who — is audited with actor upstream, acked on `<root>/ack`; a copy is
 * answered, not applied again; an unknown alarm is refused with the engine's code.
 */
import t from 'tap';
import mqtt from 'mqtt';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { Mosquitto } from './helpers/mosquitto.js';

const GW = 'alarm-gw';

t.test('alarm.ack over MQTT: acknowledged once, audited as upstream, refusals coded', async (t) => {
  const broker = await Mosquitto.create(t);
  const gw = await startTestGateway(t, {
    gateway: { id: GW },
    storage: { sync: false },
    datapoints: [{ id: 'tank.level', kind: 'sensor', type: 'number' }],
    sync: {
      enabled: true,
      pollMs: 50,
      datapointsIntervalMs: 0,
      links: [{ name: 'mq', type: 'mqtt', url: broker.url, reconnectMs: 100, downlinkAuth: 'none' }],
    },
  });
  const engine = gw.gateway.alarms!.engine;
  await engine.raise({ id: 'pump.fault', severity: 'alarm', message: 'pump fault', by: 'test' });
  const alarmId = engine.list().find((a) => a.id.endsWith('pump.fault'))!.id;
  await eventually(async () => (await gw.gateway.sync!.snapshot()).links[0]!.state === 'up', 10_000, 50);

  const client = await mqtt.connectAsync(broker.url, { clientId: 'central-test' });
  t.teardown(() => client.endAsync());
  const acks: Array<Record<string, unknown>> = [];
  client.on('message', (_topic, payload) => acks.push(JSON.parse(payload.toString()) as Record<string, unknown>));
  await client.subscribeAsync(`sites/${GW}/ack`, { qos: 1 });
  const send = (body: Record<string, unknown>) => client.publishAsync(`sites/${GW}/cmd/alarm.ack`, JSON.stringify(body), { qos: 1 });

  await send({ requestId: 'ack-1', id: alarmId, by: 'alice' });
  await eventually(() => acks.some((a) => a.requestId === 'ack-1'), 10_000, 50);
  t.match(
    acks.find((a) => a.requestId === 'ack-1'),
    { ok: true, result: { id: alarmId, acknowledged: true } },
  );
  const alarm = engine.get(alarmId)!;
  t.equal(alarm.acknowledged, true, 'the alarm is acknowledged at the site');
  t.equal(alarm.ackedBy, 'upstream:mq (alice)', 'acknowledged by the link, naming who acknowledged at central');
  const audit = gw.gateway.audit!.query({ limit: 10, action: 'alarm' }).items.filter((e) => e.action === 'alarm.ack');
  t.equal(audit.length, 1, 'audited once');
  t.match(audit[0], { actor: { kind: 'upstream', name: 'mq' }, target: alarmId, outcome: 'ok' });

  // A copy: answered from memory (not ALARM_ACKNOWLEDGED from the engine), not audited again.
  await send({ requestId: 'ack-1', id: alarmId });
  await eventually(() => acks.filter((a) => a.requestId === 'ack-1').length === 2, 10_000, 50);
  t.match(acks.filter((a) => a.requestId === 'ack-1')[1], { ok: true }, 'the copy is acked like the first');
  t.equal(gw.gateway.audit!.query({ limit: 10, action: 'alarm' }).items.filter((e) => e.action === 'alarm.ack').length, 1, 'not applied again');

  await send({ requestId: 'ack-2', id: 'alarm.nothing' });
  await eventually(() => acks.some((a) => a.requestId === 'ack-2'), 10_000, 50);
  t.match(
    acks.find((a) => a.requestId === 'ack-2'),
    { ok: false, error: { code: 'ALARM_UNKNOWN' } },
    'an unknown alarm: the engine code',
  );
});
