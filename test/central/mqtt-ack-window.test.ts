/**
 * A receiver connection commits several messages at once and acknowledges them in order
 * (central/ingest/ack-window.ts): the window and its room on their own, then MQTT.js inside `MqttReceiver`
 * against a broker played over a raw socket (mqtt-packet), for MQTT 3.1.1 and 5, where the
 * test decides when each commit ends and reads every PUBACK byte the receiver writes.
 */
import t, { type Test } from 'tap';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { generate, parser as mqttParser, type Packet } from 'mqtt-packet';
import { validateCentralConfig } from '../../central/config.js';
import { AckWindow, InFlightRoom } from '../../central/ingest/ack-window.js';
import { MqttReceiver } from '../../central/ingest/mqtt.js';
import { createCentralLogger } from '../../central/log.js';
import { CentralMetrics } from '../../central/metrics.js';
import { eventually } from '../helpers/gateway.js';

t.test('the window: PUBACKs in arrival order, at most `size` committing, nothing after a failure', async (t) => {
  const stream = new PassThrough();
  const written: number[] = [];
  stream.on('data', (b: Buffer) => {
    for (let i = 0; i < b.length; i += 4) {
      t.same([...b.subarray(i, i + 2)], [0x40, 0x02], 'a PUBACK fixed header and remaining length 2');
      written.push(b.readUInt16BE(i + 2));
    }
  });
  const room = new InFlightRoom(2);
  const w = new AckWindow(stream, room);
  // As mqtt.ts does: a message is taken once the room gives it a place.
  const taken = new Map<string, ReturnType<AckWindow['take']>>();
  const started: string[] = [];
  const arrive = (key: string, messageId: number | undefined, window = w) =>
    room.whenRoom(() => {
      started.push(key);
      taken.set(key, window.take(messageId));
    });
  arrive('a', 1);
  arrive('b', 0xfffe);
  arrive('c', 7);
  t.same(started, ['a', 'b'], 'the third message waits: two are committing');
  w.committed(taken.get('b')!);
  await new Promise((r) => setImmediate(r));
  t.same(written, [], 'the later message committed first waits for the earlier one');
  t.same(started, ['a', 'b', 'c'], 'but gives its place: only messages still committing count');
  w.committed(taken.get('a')!);
  await new Promise((r) => setImmediate(r));
  t.same(written, [1, 0xfffe], 'both, in arrival order, the 16-bit id intact');
  arrive('qos0', undefined);
  arrive('e', 5);
  t.same(started, ['a', 'b', 'c', 'qos0'], 'a QoS 0 message takes a place too');
  w.committed(taken.get('c')!);
  w.committed(taken.get('qos0')!);
  w.committed(taken.get('e')!);
  await new Promise((r) => setImmediate(r));
  t.same(written, [1, 0xfffe, 7, 5], 'and gets no PUBACK');
  t.notOk(w.failed);
  arrive('f', 3);
  arrive('g', 4);
  w.fail(taken.get('f')!);
  t.ok(w.failed, 'the connection is marked failed (the receiver keeps its reconnect backoff)');
  t.notOk(w.open, 'and takes no more PUBACKs');
  w.committed(taken.get('g')!);
  await new Promise((r) => setImmediate(r));
  t.same(written, [1, 0xfffe, 7, 5], 'after a failure nothing more is acknowledged on this connection');
  t.equal(w.inFlight, 0, 'nothing committing');
  t.equal(room.inFlight, 0, 'every place given back');

  // A new connection of the same client shares the room with what the old one still commits.
  const next = new AckWindow(new PassThrough(), room);
  arrive('h', 8);
  arrive('i', 9, next);
  arrive('j', 10, next);
  t.same(started.slice(-2), ['h', 'i'], 'the old connection’s commit holds one of the two places');
  w.fail(taken.get('h')!);
  t.same(started.slice(-1), ['j'], 'its end gives the place to the new connection');
  t.equal(next.inFlight, 2);
});

t.test('the room: a waiting message withdrawn is never started; places given in a loop', async (t) => {
  const room = new InFlightRoom(1);
  const started: string[] = [];
  room.whenRoom(() => started.push('a'));
  const withdrawB = room.whenRoom(() => started.push('b'));
  room.whenRoom(() => started.push('c'));
  withdrawB();
  room.release();
  t.same(started, ['a', 'c'], 'the withdrawn one is left out; the next takes the place');
  withdrawB();
  t.equal(room.inFlight, 1, 'withdrawing a second time changes nothing');
  // A long run of messages that give their place back at once (their connection is gone): no recursion.
  let skipped = 0;
  for (let i = 0; i < 100_000; i++)
    room.whenRoom(() => {
      skipped++;
      room.release();
    });
  room.whenRoom(() => started.push('d'));
  room.release();
  t.equal(skipped, 100_000, 'every one started once');
  t.same(started, ['a', 'c', 'd']);
  t.equal(room.inFlight, 1);
});

/** A broker of one connection: CONNACK, SUBACK, then the PUBLISHes the test sends; every packet the client sends is kept. */
async function rawBroker(t: Test, protocolVersion: 4 | 5) {
  const received: Packet[] = [];
  let client: Socket | undefined;
  const server = createServer((socket) => {
    client = socket;
    const parser = mqttParser({ protocolVersion });
    parser.on('packet', (p: Packet) => {
      received.push(p);
      if (p.cmd === 'connect') socket.write(generate({ cmd: 'connack', returnCode: 0, reasonCode: 0, sessionPresent: false }, { protocolVersion }));
      if (p.cmd === 'subscribe') socket.write(generate({ cmd: 'suback', messageId: p.messageId, granted: p.subscriptions.map(() => 1) }, { protocolVersion }));
      if (p.cmd === 'pingreq') socket.write(generate({ cmd: 'pingresp' }, { protocolVersion }));
    });
    socket.on('data', (d: Buffer) => parser.parse(d));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    client?.destroy();
    server.close();
  });
  return {
    url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    subscribed: () => received.some((p) => p.cmd === 'subscribe'),
    /** Closes the client's connection from the broker's side. */
    drop: () => client?.destroy(),
    publish(messageId: number, payload: string) {
      const topic = 'sites/gw-7/data';
      client!.write(generate({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, messageId, dup: false, retain: false }, { protocolVersion }));
    },
    pubacks: () => received.filter((p) => p.cmd === 'puback').map((p) => (p as { messageId: number }).messageId),
  };
}

/**
 * A receiver whose commits the test ends (`commit`): each message's commit is held until then;
 * a message "fails" fails at once, as a database that refuses it (the connection is dropped for
 * redelivery). `most`: the most commits held at once.
 */
async function heldReceiver(t: Test, url: string, clientId: string, protocolVersion: 4 | 5, reconnectMs: number) {
  const config = validateCentralConfig({ ingest: { mqtt: { url, clientId, protocolVersion, messagesInFlight: 3, reconnectMs } } }).ingest.mqtt!;
  const commits = new Map<string, () => void>();
  let most = 0;
  const receiver = new MqttReceiver({
    config,
    metrics: new CentralMetrics(),
    log: createCentralLogger({ level: 'silent' }),
    handler: {
      data: (_gateway, _lane, payload) => {
        if (payload.toString() === 'fails') return Promise.reject(new Error('the database is read-only'));
        return new Promise<void>((resolve) => {
          commits.set(payload.toString(), resolve);
          most = Math.max(most, commits.size);
        });
      },
      async status() {},
    },
  });
  await receiver.start();
  t.teardown(() => receiver.stop());
  return {
    commits,
    stop: () => receiver.stop(),
    most: () => most,
    commit(key: string) {
      commits.get(key)!();
      commits.delete(key);
    },
  };
}

for (const protocolVersion of [4, 5] as const) {
  t.test(
    `MQTT ${protocolVersion === 4 ? '3.1.1' : '5'}: a connection commits up to messagesInFlight at once; each PUBACK after its commit, in order`,
    async (t) => {
      const broker = await rawBroker(t, protocolVersion);
      const { commits, commit, most } = await heldReceiver(t, broker.url, `central-window-${protocolVersion}`, protocolVersion, 200);
      await eventually(async () => broker.subscribed(), 10_000, 20);

      for (let id = 1; id <= 5; id++) broker.publish(id, `m${id}`);
      await eventually(async () => commits.size === 3, 5000, 10);
      await new Promise((r) => setTimeout(r, 200));
      t.same([...commits.keys()], ['m1', 'm2', 'm3'], 'three messages handled at once, the fourth waits while three are committing');
      commit('m3');
      commit('m2');
      await eventually(async () => commits.has('m4') && commits.has('m5'), 5000, 10);
      t.same(broker.pubacks(), [], 'no PUBACK while the first message is not committed');
      commit('m1');
      await eventually(async () => broker.pubacks().length === 3, 5000, 10);
      t.same(broker.pubacks(), [1, 2, 3], 'the first three acknowledged in arrival order once the first committed');
      commit('m5');
      commit('m4');
      await eventually(async () => broker.pubacks().length === 5, 5000, 10);
      t.same(broker.pubacks(), [1, 2, 3, 4, 5], 'each message acknowledged once, in order');
      t.equal(most(), 3, 'never more than messagesInFlight at once');
    },
  );
}

t.test('a reconnect does not open a second window: commits of the dropped connection still count', async (t) => {
  const broker = await rawBroker(t, 4);
  const { commits, commit, most } = await heldReceiver(t, broker.url, 'central-window-reconnect', 4, 100);
  const subscribes = () => broker.received.filter((p) => p.cmd === 'subscribe').length;
  await eventually(async () => subscribes() === 1, 10_000, 20);
  broker.publish(1, 'm1');
  broker.publish(2, 'm2');
  broker.publish(3, 'fails');
  await eventually(async () => subscribes() === 2, 10_000, 20);
  t.same([...commits.keys()], ['m1', 'm2'], 'the dropped connection’s two messages still committing');
  // The new connection: the broker delivers more (a long database stall: they would pile up).
  for (let id = 4; id <= 6; id++) broker.publish(id, `m${id}`);
  await eventually(async () => commits.has('m4'), 5000, 10);
  await new Promise((r) => setTimeout(r, 300));
  t.same([...commits.keys()], ['m1', 'm2', 'm4'], 'the new connection takes only the place left');
  commit('m1');
  await eventually(async () => commits.has('m5'), 5000, 10);
  commit('m2');
  await eventually(async () => commits.has('m6'), 5000, 10);
  for (const key of ['m4', 'm5', 'm6']) commit(key);
  await eventually(async () => broker.pubacks().length === 3, 5000, 10);
  t.same(broker.pubacks(), [4, 5, 6], 'PUBACKs only on the connection each message came on');
  t.equal(most(), 3, 'never more than messagesInFlight committing, across the reconnect');
});

t.test('a message waiting for a place when its connection closes is dropped; stop lets running commits finish', async (t) => {
  const broker = await rawBroker(t, 4);
  const held = await heldReceiver(t, broker.url, 'central-window-drop', 4, 100);
  const subscribes = () => broker.received.filter((p) => p.cmd === 'subscribe').length;
  await eventually(async () => subscribes() === 1, 10_000, 20);
  for (let id = 1; id <= 4; id++) broker.publish(id, `m${id}`);
  await eventually(async () => held.commits.size === 3, 5000, 10);
  await new Promise((r) => setTimeout(r, 100));
  t.notOk(held.commits.has('m4'), 'the fourth waits for a place');
  broker.drop();
  await eventually(async () => subscribes() === 2, 10_000, 20);
  broker.publish(5, 'm5');
  await new Promise((r) => setTimeout(r, 100));
  held.commit('m1');
  await eventually(async () => held.commits.has('m5'), 5000, 10);
  t.notOk(held.commits.has('m4'), 'the place went to the new connection, not to the message of the closed one');
  t.same(broker.pubacks(), [], 'nothing acknowledged on the closed connection');
  // Stop while m5 commits: it finishes and is acknowledged before the connection ends.
  const stopping = held.stop();
  setTimeout(() => held.commit('m5'), 300);
  await stopping;
  t.same(broker.pubacks(), [5], 'the commit running at stop was acknowledged');
  t.ok(
    broker.received.some((p) => p.cmd === 'disconnect'),
    'then the receiver disconnected',
  );
});
