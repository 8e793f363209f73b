import t from 'tap';
import { Writable } from 'node:stream';
import mqtt from 'mqtt';
import { validateCentralConfig } from '../../central/config.js';
import { MqttReceiver } from '../../central/ingest/mqtt.js';
import { createCentralLogger } from '../../central/log.js';
import { CentralMetrics } from '../../central/metrics.js';
import { eventually } from '../helpers/gateway.js';
import { Mosquitto } from '../sync/helpers/mosquitto.js';

const MESSAGES = 80;
/** A commit this slow, 64 messages in flight ahead of the PINGRESP: 7.7 s, past the 7.5 s of a 5 s keepalive. */
const COMMIT_MS = 120;

t.test('a receiver working through a backlog slower than its keepalive keeps its connection: each message handled once, no keepalive timeout', async (t) => {
  const broker = await Mosquitto.create(t);
  const config = validateCentralConfig({
    ingest: { mqtt: { url: broker.url, clientId: 'central-slow', keepaliveSeconds: 5, reconnectMs: 200 } },
  }).ingest.mqtt!;
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line));
      cb();
    },
  });
  const handled = new Map<string, number>();
  const receiver = new MqttReceiver({
    config,
    metrics: new CentralMetrics(),
    log: createCentralLogger({ level: 'info', destination: sink }),
    handler: {
      async data(_gateway, _lane, payload) {
        await new Promise((r) => setTimeout(r, COMMIT_MS));
        const key = payload.toString();
        handled.set(key, (handled.get(key) ?? 0) + 1);
      },
      async status() {},
    },
  });
  await receiver.start();
  t.teardown(() => receiver.stop());
  await eventually(async () => logs.some((l) => l.msg === 'MQTT ingest connected'), 10_000, 50);
  // Its subscriptions are sent right after the CONNACK; a message before them would go to no one.
  await new Promise((r) => setTimeout(r, 500));

  const publisher = await mqtt.connectAsync(broker.url, { clientId: 'slow-backlog-publisher' });
  t.teardown(() => publisher.endAsync());
  for (let i = 0; i < MESSAGES; i++) await publisher.publishAsync('sites/gw-slow/data', `message ${i}`, { qos: 1 });

  await eventually(async () => handled.size === MESSAGES, 60_000, 100);
  // Redeliveries after a dropped connection would come now: give them the time of a reconnect.
  await new Promise((r) => setTimeout(r, 1000));
  const repeated = [...handled].filter(([, n]) => n > 1);
  t.same(repeated, [], 'no message handled twice (no redelivery after a dropped connection)');
  t.equal(handled.size, MESSAGES, 'every message handled');
  t.same(
    logs.filter((l) => l.msg === 'MQTT ingest connection error').map((l) => l.err),
    [],
    'no connection error (MQTT.js: "Keepalive timeout")',
  );
  t.equal(logs.filter((l) => l.msg === 'MQTT ingest connected').length, 1, 'connected once');
});
