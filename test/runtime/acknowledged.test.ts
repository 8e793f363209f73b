/**
 * Acknowledged means stored (issue 17), against a real gateway on loopback with raw MQTT
 * clients that pipeline: readings without "t" that share a millisecond, QoS 2 retransmissions,
 * and a burst of first values to a new datapoint.
 */
import t from 'tap';
import mqtt from 'mqtt';
import type { Packet } from 'mqtt-packet';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';
import { join } from 'node:path';
import { ReadingTimes } from '../../runtime/datapoints/stamps.js';
import { LevelStore } from '../../storage/level/level-store.js';

const portOf = (url: string) => Number(new URL(url).port);
const isPuback = (p: Packet) => p.cmd === 'puback';

t.test('2,000 QoS 1 {"v": i} without "t", pipelined to one datapoint: every acknowledged value is stored, in order', async (t) => {
  const gw = await startTestGateway(t, { log: { level: 'warn' } });
  t.teardown(() => gw.stop());
  const c = await RawMqtt.connect(portOf(gw.mqttUrl), { clientId: 'same-ms' });
  t.teardown(() => c.destroy());
  const N = 2000;
  const before = Date.now();
  c.send(
    ...Array.from(
      { length: N },
      (_, i): Packet => ({
        cmd: 'publish',
        topic: 'outpost/dp/burst.same/value',
        payload: Buffer.from(JSON.stringify({ v: i })),
        qos: 1,
        messageId: i + 1,
        retain: false,
        dup: false,
      }),
    ),
  );
  const acks = await c.waitForCount(isPuback, N, 30_000);
  t.equal(acks.length, N, 'all PUBACKed');
  const stored = await gw.gateway.store.query('burst.same', { limit: 100_000 });
  t.equal(stored.length, N, `all ${N} stored (no two share a millisecond)`);
  t.same(
    stored.map((p) => p.v),
    Array.from({ length: N }, (_, i) => i),
    'in the order they were sent',
  );
  const times = stored.map((p) => p.t);
  t.ok(
    times.every((ts, i) => i === 0 || ts > times[i - 1]!),
    'times strictly increase',
  );
  t.ok(times[0]! >= before, 'the first is stamped with its arrival time');
  t.ok(times[N - 1]! - Date.now() < N, `stamps run ahead of the clock by at most the burst: ${times[N - 1]! - Date.now()} ms`);
});

t.test('1,000 QoS 1 publications pipelined right behind the CONNECT, before its CONNACK, are all served', async (t) => {
  const gw = await startTestGateway(t, { log: { level: 'warn' } });
  t.teardown(() => gw.stop());
  const c = await RawMqtt.connect(portOf(gw.mqttUrl), { clientId: 'eager', awaitConnack: false });
  t.teardown(() => c.destroy());
  c.send(
    ...Array.from(
      { length: 1000 },
      (_, i): Packet => ({
        cmd: 'publish',
        topic: `outpost/dp/eager.p${i % 10}/value`,
        payload: Buffer.from(JSON.stringify({ v: i })),
        qos: 1,
        messageId: i + 1,
        retain: false,
        dup: false,
      }),
    ),
  );
  t.equal((await c.waitForCount(isPuback, 1000, 30_000)).length, 1000, 'all PUBACKed');
  t.notOk(c.closed, 'and the connection stays open (Aedes queues only maxInflight packets before its CONNACK)');
  t.equal((await gw.gateway.store.query('eager.p3', { limit: 1000 })).length, 100);
});

t.test('a re-sent value with an explicit "t" stays idempotent; values with and without "t" in one millisecond are both kept', async (t) => {
  const gw = await startTestGateway(t, { log: { level: 'warn' } });
  t.teardown(() => gw.stop());
  const c = await mqtt.connectAsync(gw.mqttUrl, { reconnectPeriod: 0 });
  t.teardown(() => c.endAsync());
  const ts = Date.now() - 60_000;
  for (let i = 0; i < 3; i++) await c.publishAsync('outpost/dp/idem.p/value', JSON.stringify({ v: 7, t: ts }), { qos: 1 });
  t.same(await gw.gateway.store.query('idem.p', { from: 0 }), [{ t: ts, v: 7 }], 'the same (id, t) three times is one reading');
  const now = Date.now();
  await Promise.all([
    c.publishAsync('outpost/dp/idem.q/value', JSON.stringify({ v: 1, t: now }), { qos: 1 }),
    c.publishAsync('outpost/dp/idem.q/value', '{"v":2}', { qos: 1 }),
    c.publishAsync('outpost/dp/idem.q/value', '3', { qos: 1 }),
  ]);
  const q = await gw.gateway.store.query('idem.q', { from: 0 });
  t.same(
    q.map((p) => p.v),
    [1, 2, 3],
    'a stamped reading never replaces one sent with the same millisecond',
  );
});

t.test('ReadingTimes: the rule of stamps', async (t) => {
  const times = new ReadingTimes();
  t.equal(times.stamp('a', 1000), 1000, 'arrival time');
  t.equal(times.stamp('a', 1000), 1001, 'the same millisecond again: one after the newest');
  t.equal(times.stamp('a', 1000), 1002);
  t.equal(times.stamp('b', 1000), 1000, 'per datapoint');
  t.equal(times.stamp('a', 1005), 1005, 'the clock caught up: arrival time again');
  t.equal(times.observe('a', 1010, 1005, undefined), true, 'a sent time ahead of the clock is the newest');
  t.equal(times.stamp('a', 1006), 1011, 'and a stamp follows it');
  t.equal(times.observe('a', 1008, 1006, undefined), false, 'an older sent time is not the newest');
  t.equal(times.observe('c', 500, 1006, 600), false, 'older than what storage holds: not the newest');
  t.equal(times.observe('a', 5_000_000, 1006, undefined), true);
  t.equal(times.stamp('a', 1007), 1007, 'a sent time far ahead (a wrong device clock) is not followed');
});

t.test('QoS 2 is exactly once into storage: a DUP before PUBREL, in the same read, and after a reconnect of a persistent session', async (t) => {
  const gw = await startTestGateway(t, { log: { level: 'warn' } });
  t.teardown(() => gw.stop());
  const port = portOf(gw.mqttUrl);
  const publish = (messageId: number, v: number, dup = false): Packet => ({
    cmd: 'publish',
    topic: 'outpost/dp/once.p/value',
    payload: Buffer.from(JSON.stringify({ v })),
    qos: 2,
    messageId,
    retain: false,
    dup,
  });
  const values = async () => (await gw.gateway.store.query('once.p', { from: 0 })).map((p) => p.v);
  const pubrecs = (c: RawMqtt, id: number) => c.received.filter((p) => p.cmd === 'pubrec' && p.messageId === id).length;

  const a = await RawMqtt.connect(port, { clientId: 'once-a', clean: false });
  t.teardown(() => a.destroy());
  a.send(publish(1, 10));
  await a.waitFor((p) => p.cmd === 'pubrec' && p.messageId === 1);
  a.send(publish(1, 10, true));
  await a.waitForCount((p) => p.cmd === 'pubrec' && p.messageId === 1, 2);
  t.same(await values(), [10], 'a DUP after PUBREC, before PUBREL: answered with PUBREC, not stored again');

  a.send(publish(2, 20), publish(2, 20, true), publish(2, 20, true));
  await a.waitForCount((p) => p.cmd === 'pubrec' && p.messageId === 2, 3);
  t.same(await values(), [10, 20], 'the original and two DUPs in one write: stored once');

  a.send({ cmd: 'pubrel', messageId: 1 });
  await a.waitFor((p) => p.cmd === 'pubcomp' && p.messageId === 1);
  a.send(publish(1, 11));
  await a.waitForCount((p) => p.cmd === 'pubrec' && p.messageId === 1, 3);
  t.same(await values(), [10, 20, 11], 'after PUBREL the id is free: a new message with it is stored');

  // The connection drops before PUBREL; the session persists; the client sends the PUBLISH again.
  a.send(publish(3, 30));
  await a.waitFor((p) => p.cmd === 'pubrec' && p.messageId === 3);
  a.destroy();
  const b = await RawMqtt.connect(port, { clientId: 'once-a', clean: false });
  t.teardown(() => b.destroy());
  b.send(publish(3, 30, true));
  await b.waitFor((p) => p.cmd === 'pubrec' && p.messageId === 3);
  t.equal(pubrecs(b, 3), 1);
  t.same(await values(), [10, 20, 11, 30], 'a DUP on the next connection of the session: not stored again');
  b.send({ cmd: 'pubrel', messageId: 3 }, { cmd: 'pubrel', messageId: 2 }, { cmd: 'pubrel', messageId: 1 });
  await b.waitFor((p) => p.cmd === 'pubcomp' && p.messageId === 1);
  b.send(publish(3, 31));
  await b.waitForCount((p) => p.cmd === 'pubrec' && p.messageId === 3, 2);
  t.same(await values(), [10, 20, 11, 30, 31], 'released on this connection: the id is free again');

  // Subscribers get each message once.
  const sub = await mqtt.connectAsync(gw.mqttUrl, { reconnectPeriod: 0 });
  t.teardown(() => sub.endAsync());
  const got: number[] = [];
  sub.on('message', (_topic, payload, packet) => !packet.retain && got.push((JSON.parse(payload.toString()) as { v: number }).v));
  await sub.subscribeAsync('outpost/dp/once.p/value', { qos: 2 });
  b.send(publish(4, 40), publish(4, 40, true));
  await b.waitForCount((p) => p.cmd === 'pubrec' && p.messageId === 4, 2);
  b.send({ cmd: 'pubrel', messageId: 4 });
  await b.waitFor((p) => p.cmd === 'pubcomp' && p.messageId === 4);
  await eventually(() => got.length >= 1);
  await new Promise((r) => setTimeout(r, 200));
  t.same(got, [40], 'a subscriber got it once');
});

t.test('a burst of first values to a new datapoint registers it once and counts it once', async (t) => {
  const gw = await startTestGateway(t, { log: { level: 'warn' }, broker: { maxAutoDatapoints: 5 } });
  t.teardown(() => gw.stop());
  let metas = 0;
  gw.gateway.registry.onChange((dp) => dp.id === 'burst.a' && metas++);
  const c = await RawMqtt.connect(portOf(gw.mqttUrl), { clientId: 'first-burst' });
  t.teardown(() => c.destroy());
  c.send(
    ...Array.from(
      { length: 10 },
      (_, i): Packet => ({
        cmd: 'publish',
        topic: 'outpost/dp/burst.a/value',
        payload: Buffer.from(JSON.stringify({ v: i })),
        qos: 1,
        messageId: i + 1,
        retain: false,
        dup: false,
      }),
    ),
  );
  await c.waitForCount(isPuback, 10);
  t.equal(metas, 1, 'registered once');
  t.equal((await gw.gateway.store.query('burst.a', { from: 0 })).length, 10, 'all ten stored');
  c.send(
    ...['b', 'c', 'd', 'e', 'f'].map(
      (x, i): Packet => ({
        cmd: 'publish',
        topic: `outpost/dp/burst.${x}/value`,
        payload: Buffer.from('{"v":1}'),
        qos: 1,
        messageId: 100 + i,
        retain: false,
        dup: false,
      }),
    ),
  );
  await c.waitForCount(isPuback, 15);
  t.ok(gw.gateway.registry.get('burst.e'), 'four more new datapoints fit the limit of five');
  t.notOk(gw.gateway.registry.get('burst.f'), 'the sixth is refused');
  t.match(
    gw.logs.find((l) => l.code === 'DP_LIMIT'),
    { code: 'DP_LIMIT' },
    'with DP_LIMIT',
  );
});

t.test('QoS 0 readings the broker took are on disk after a graceful stop', async (t) => {
  const gw = await startTestGateway(t, { log: { level: 'warn' } });
  const c = await RawMqtt.connect(portOf(gw.mqttUrl), { clientId: 'qos0-stop' });
  t.teardown(() => c.destroy());
  const base = Date.now() - 60_000;
  c.send(
    ...Array.from(
      { length: 500 },
      (_, i): Packet => ({
        cmd: 'publish',
        topic: 'outpost/dp/stop.q0/value',
        payload: Buffer.from(JSON.stringify({ v: i, t: base + i })),
        qos: 0,
        retain: false,
        dup: false,
      }),
    ),
  );
  // A QoS 1 publication behind them: once it is acknowledged, the broker has taken all 500.
  c.send({ cmd: 'publish', topic: 'outpost/dp/stop.q1/value', payload: Buffer.from('{"v":1}'), qos: 1, messageId: 1, retain: false, dup: false });
  await c.waitFor(isPuback);
  await gw.stop();
  const store = new LevelStore({ path: join(gw.dataDir, 'db') });
  await store.open();
  t.teardown(() => store.close());
  t.equal((await store.query('stop.q0', { from: 0, limit: 1000 })).length, 500, 'all 500 stored');
});
