/**
 * A receiver connection commits several messages at once and acknowledges them in order
 * (central/ingest/ack-window.ts): the window on its own, then MQTT.js inside `MqttReceiver`
 * against a broker played over a raw socket (mqtt-packet), for MQTT 3.1.1 and 5, where the
 * test decides when each commit ends and reads every PUBACK byte the receiver writes.
 */
import t, { type Test } from 'tap';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { generate, parser as mqttParser, type Packet } from 'mqtt-packet';
import { validateCentralConfig } from '../../central/config.js';
import { AckWindow } from '../../central/ingest/ack-window.js';
import { MqttReceiver } from '../../central/ingest/mqtt.js';
import { createCentralLogger } from '../../central/log.js';
import { CentralMetrics } from '../../central/metrics.js';
import { eventually } from '../helpers/gateway.js';

t.test('the window: PUBACKs in arrival order, at most `size` taken, nothing after a failure', async (t) => {
  const stream = new PassThrough();
  const written: number[] = [];
  stream.on('data', (b: Buffer) => {
    for (let i = 0; i < b.length; i += 4) {
      t.same([...b.subarray(i, i + 2)], [0x40, 0x02], 'a PUBACK fixed header and remaining length 2');
      written.push(b.readUInt16BE(i + 2));
    }
  });
  const w = new AckWindow(stream, 2);
  const nexts: number[] = [];
  const a = w.take(1);
  w.whenRoom(() => nexts.push(1));
  const b = w.take(0xfffe);
  w.whenRoom(() => nexts.push(2));
  t.same(nexts, [1], 'the second message fills the window: MQTT.js reads nothing more');
  w.committed(b);
  await new Promise((r) => setImmediate(r));
  t.same(written, [], 'the later message committed first waits for the earlier one');
  t.same(nexts, [1, 2], 'but makes room: only messages still committing count');
  w.committed(a);
  await new Promise((r) => setImmediate(r));
  t.same(written, [1, 0xfffe], 'both, in arrival order, the 16-bit id intact');
  const qos0 = w.take(undefined);
  const e = w.take(5);
  w.whenRoom(() => nexts.push(3));
  t.same(nexts, [1, 2], 'a QoS 0 message takes a place in the window too');
  w.committed(qos0);
  w.committed(e);
  await new Promise((r) => setImmediate(r));
  t.same(written, [1, 0xfffe, 5], 'and gets no PUBACK');
  t.same(nexts, [1, 2, 3]);
  t.notOk(w.failed);
  const c = w.take(3);
  const d = w.take(4);
  w.fail(c);
  t.ok(w.failed, 'the connection is marked failed (the receiver keeps its reconnect backoff)');
  w.committed(d);
  await new Promise((r) => setImmediate(r));
  t.same(written, [1, 0xfffe, 5], 'after a failure nothing more is acknowledged on this connection');
  t.equal(w.inFlight, 0, 'nothing committing');
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
    publish(messageId: number, payload: string) {
      const topic = 'sites/gw-7/data';
      client!.write(generate({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, messageId, dup: false, retain: false }, { protocolVersion }));
    },
    pubacks: () => received.filter((p) => p.cmd === 'puback').map((p) => (p as { messageId: number }).messageId),
  };
}

for (const protocolVersion of [4, 5] as const) {
  t.test(
    `MQTT ${protocolVersion === 4 ? '3.1.1' : '5'}: a connection commits up to messagesInFlight at once; each PUBACK after its commit, in order`,
    async (t) => {
      const broker = await rawBroker(t, protocolVersion);
      const config = validateCentralConfig({
        ingest: { mqtt: { url: broker.url, clientId: `central-window-${protocolVersion}`, protocolVersion, messagesInFlight: 3, reconnectMs: 200 } },
      }).ingest.mqtt!;
      const commits = new Map<string, () => void>();
      let most = 0;
      const receiver = new MqttReceiver({
        config,
        metrics: new CentralMetrics(),
        log: createCentralLogger({ level: 'silent' }),
        handler: {
          data: (_gateway, _lane, payload) =>
            new Promise<void>((resolve) => {
              commits.set(payload.toString(), resolve);
              most = Math.max(most, commits.size);
            }),
          async status() {},
        },
      });
      await receiver.start();
      t.teardown(() => receiver.stop());
      await eventually(async () => broker.subscribed(), 10_000, 20);

      for (let id = 1; id <= 5; id++) broker.publish(id, `m${id}`);
      await eventually(async () => commits.size === 3, 5000, 10);
      await new Promise((r) => setTimeout(r, 200));
      t.same([...commits.keys()], ['m1', 'm2', 'm3'], 'three messages handled at once, the fourth not read while the window is full');
      const commit = (key: string) => {
        commits.get(key)!();
        commits.delete(key);
      };
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
      t.equal(most, 3, 'never more than messagesInFlight at once');
    },
  );
}
