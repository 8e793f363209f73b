/**
 * A device only ever sees setpoints that passed validation (issue 17). The device is Debian's
 * mosquitto_sub subscribed to its actuator's `/set`; setpoints come over MQTT (mosquitto_pub),
 * REST and the upstream downlink (a real Mosquitto as the central broker). Seen before: a
 * `{"v":5}` for a 0..1 actuator reached the device while set/result said SETPOINT_OUT_OF_RANGE.
 */
import t from 'tap';
import mqtt from 'mqtt';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startTestGateway, eventually, type TestGateway } from '../helpers/gateway.js';
import { Mosquitto } from '../sync/helpers/mosquitto.js';
import { GATEWAY_ID, startSync } from '../sync/helpers/sync.js';
import type { Teardown } from '../helpers/teardown.js';

const run = promisify(execFile);
const portOf = (url: string) => String(new URL(url).port);

/** mosquitto_sub as the device: resolves once its SUBACK came; `lines` are the payloads it got. */
async function device(t: Teardown, gw: TestGateway, topic: string): Promise<{ lines: string[] }> {
  // stdbuf: mosquitto_sub's output to a pipe is block-buffered; each line is needed as it comes.
  const child = spawn('stdbuf', ['-oL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', portOf(gw.mqttUrl), '-i', 'valve-device', '-q', '1', '-t', topic, '-d'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => child.kill());
  const lines: string[] = [];
  let buffered = '';
  let subscribed = false;
  child.stdout.on('data', (d: Buffer) => {
    buffered += d.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    for (const line of parts) {
      // With -d, mosquitto_sub prints its protocol log as well: the payloads are the other lines.
      if (/^Client .* (received|sending) |^Subscribed \(mid/.test(line)) {
        if (/received SUBACK/.test(line)) subscribed = true;
      } else if (line.trim() !== '') lines.push(line);
    }
  });
  if (!(await eventually(() => subscribed, 5000))) throw new Error('mosquitto_sub did not subscribe');
  return { lines };
}

async function pub(gw: TestGateway, topic: string, message: string): Promise<void> {
  await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', portOf(gw.mqttUrl), '-q', '1', '-t', topic, '-m', message]);
}

t.test('a plain MQTT actuator 0..1: refused setpoints never reach its /set subscriber, accepted ones arrive validated', async (t) => {
  const broker = await Mosquitto.create(t);
  const gw = await startTestGateway(t, { log: { level: 'warn' }, storage: { sync: false } });
  t.teardown(() => gw.stop());
  await pub(gw, 'outpost/dp/lab.valve/meta', '{"kind":"actuator","type":"number","min":0,"max":1}');
  await eventually(() => gw.gateway.registry.get('lab.valve')?.kind === 'actuator');
  const valve = await device(t, gw, 'outpost/dp/lab.valve/set');
  const watcher = await mqtt.connectAsync(gw.mqttUrl, { reconnectPeriod: 0 });
  t.teardown(() => watcher.endAsync());
  const results: Array<{ ok: boolean; v?: number; error?: { code: string } }> = [];
  const errors: unknown[] = [];
  watcher.on('message', (topic, payload) => (topic.endsWith('/set/result') ? results : errors).push(JSON.parse(payload.toString())));
  await watcher.subscribeAsync(['outpost/dp/lab.valve/set/result', 'outpost/dp/lab.valve/error'], { qos: 1 });

  // MQTT
  await pub(gw, 'outpost/dp/lab.valve/set', '{"v":5}');
  await eventually(() => results.length === 1);
  t.match(results[0], { ok: false, error: { code: 'SETPOINT_OUT_OF_RANGE' } }, 'MQTT: refused on set/result');
  await eventually(() => errors.length === 1);
  t.match(errors[0], { topic: 'outpost/dp/lab.valve/set', error: { code: 'SETPOINT_OUT_OF_RANGE' } }, 'and reported on /error');
  await pub(gw, 'outpost/dp/lab.valve/set', '1');
  await eventually(() => results.length === 2);
  t.match(results[1], { ok: true, v: 1 }, 'MQTT: a bare 1 is accepted');

  // REST
  const post = (v: unknown) =>
    fetch(`${gw.httpUrl}/api/datapoints/lab.valve/setpoint`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ v }) });
  t.equal((await post(-1)).status, 400, 'REST: -1 refused');
  t.equal((await post(0)).status, 200, 'REST: 0 accepted');

  // Downlink over a real Mosquitto as the central broker
  await startSync(t, gw, {
    pollMs: 20,
    backoff: { initialMs: 50, maxMs: 300 },
    datapointsIntervalMs: 0,
    links: [{ name: 'central', type: 'mqtt', url: broker.url, reconnectMs: 100, downlinkAuth: 'none' }],
  });
  const central = await mqtt.connectAsync(broker.url, { clientId: 'central-cmd' });
  t.teardown(() => central.endAsync(true));
  const acks: Array<{ requestId: string; ok: boolean }> = [];
  central.on('message', (_topic, payload) => acks.push(JSON.parse(payload.toString())));
  await central.subscribeAsync(`sites/${GATEWAY_ID}/ack`, { qos: 1 });
  const cmd = async (requestId: string, v: number) => {
    // The link subscribes once connected: send until the command is answered.
    await eventually(async () => {
      await central.publishAsync(`sites/${GATEWAY_ID}/cmd/setpoint`, JSON.stringify({ requestId, id: 'lab.valve', v }), { qos: 1 });
      return eventually(() => acks.some((a) => a.requestId === requestId), 500);
    }, 10_000);
    return acks.find((a) => a.requestId === requestId);
  };
  t.match(await cmd('d1', 7), { ok: false }, 'downlink: 7 refused');
  t.match(await cmd('d2', 1), { ok: true }, 'downlink: 1 accepted');

  await eventually(() => valve.lines.length >= 3, 3000);
  await new Promise((r) => setTimeout(r, 300));
  t.same(valve.lines, ['{"v":1}', '{"v":0}', '{"v":1}'], 'the device got the three accepted setpoints, validated, and none of the refused ones');
  t.equal(gw.gateway.store.latest('lab.valve')?.v, 1);
});

t.test("values on an actuator's /value: a device reports its state; a virtual actuator's value is its setpoint", async (t) => {
  const gw = await startTestGateway(t, { log: { level: 'warn' }, datapoints: [{ id: 'site.mode', kind: 'actuator', type: 'number', min: 0, max: 3 }] });
  t.teardown(() => gw.stop());
  await pub(gw, 'outpost/dp/lab.heater/meta', '{"kind":"actuator","type":"number","min":0,"max":1}');
  await eventually(() => gw.gateway.registry.get('lab.heater')?.kind === 'actuator');
  const heater = await device(t, gw, 'outpost/dp/+/set');
  await pub(gw, 'outpost/dp/lab.heater/value', '{"v":5}');
  await eventually(() => gw.gateway.store.latest('lab.heater') !== undefined);
  t.equal(
    gw.gateway.store.latest('lab.heater')?.v,
    5,
    "a plain MQTT device's reported state is recorded as it is, even outside the range it may be commanded to",
  );
  await pub(gw, 'outpost/dp/site.mode/value', '{"v":9}');
  await pub(gw, 'outpost/dp/site.mode/value', '{"v":2}');
  await new Promise((r) => setTimeout(r, 200));
  t.equal(gw.gateway.store.latest('site.mode'), undefined, 'a virtual actuator takes no value from /value: it has no device to report it');
  t.match(
    gw.logs.find((l) => l.code === 'TOPIC_PROTECTED'),
    { topic: 'outpost/dp/site.mode/value' },
  );
  await pub(gw, 'outpost/dp/site.mode/set', '2');
  await eventually(() => gw.gateway.store.latest('site.mode')?.v === 2);
  t.pass('its /set is the way to change it');
  await eventually(() => heater.lines.length >= 1, 2000);
  t.same(heater.lines, ['{"v":2}'], 'and no /value ever appeared on /set');
});
