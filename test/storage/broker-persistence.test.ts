import t from 'tap';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { createBrokerPersistence, type LevelBrokerPersistence } from '../../storage/broker-persistence.js';
import { REPO_ROOT } from '../helpers/process.js';

t.test("aedes-persistence's abstract suite passes", async (t) => {
  const file = fileURLToPath(new URL('./broker-persistence.abstract.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', file], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  const pass = Number(/^# pass (\d+)/m.exec(out)?.[1] ?? 0);
  const fail = Number(/^# fail (\d+)/m.exec(out)?.[1] ?? -1);
  t.equal(code, 0, 'suite exits 0');
  t.equal(fail, 0, 'no failures');
  t.ok(pass >= 50, `${pass} abstract tests passed`);
  if (code !== 0)
    t.comment(
      out
        .split('\n')
        .filter((l) => /not ok|Error|expected|actual/.test(l))
        .slice(0, 30)
        .join('\n'),
    );
});

interface RunningBroker {
  port: number;
  persistence: LevelBrokerPersistence;
  close(): Promise<void>;
}

async function startBroker(path: string): Promise<RunningBroker> {
  const persistence = createBrokerPersistence({ path });
  const aedes = await Aedes.createBroker({ persistence });
  const server: Server = createServer((socket) => aedes.handle(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    persistence,
    async close() {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await persistence.destroy();
    },
  };
}

async function connect(port: number, options: mqtt.IClientOptions): Promise<mqtt.MqttClient> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, ...options });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return client;
}

t.test('retained messages, persistent sessions and offline QoS 1 queues survive a broker restart', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-broker-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'db');

  let broker = await startBroker(path);
  const device = await connect(broker.port, { clientId: 'dev-a', clean: false });
  await device.subscribeAsync('alarm/#', { qos: 1 });
  await device.endAsync();
  const publisher = await connect(broker.port, { clientId: 'pub' });
  await publisher.publishAsync('site/config', 'v1', { qos: 1, retain: true });
  for (let i = 0; i < 3; i++) await publisher.publishAsync(`alarm/${i}`, `alarm ${i}`, { qos: 1 });
  await publisher.endAsync();
  await broker.close();

  broker = await startBroker(path);
  t.teardown(() => broker.close());
  const received: string[] = [];
  const back = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'dev-a', clean: false, reconnectPeriod: 0 });
  back.on('message', (topic, payload) => received.push(`${topic}=${payload.toString()}`));
  const session = await new Promise<boolean>((resolve, reject) => {
    back.once('connect', (ack) => resolve(ack.sessionPresent));
    back.once('error', reject);
  });
  t.ok(session, 'session present after restart');
  const deadline = Date.now() + 5000;
  while (received.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.same(received, ['alarm/0=alarm 0', 'alarm/1=alarm 1', 'alarm/2=alarm 2'], 'offline queue delivered in order');
  // The subscription itself survived too: a new publication reaches the device.
  const other = await connect(broker.port, { clientId: 'pub2' });
  await other.publishAsync('alarm/9', 'after restart', { qos: 1 });
  while (received.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.equal(received[3], 'alarm/9=after restart', 'subscription restored');
  const viewer = await connect(broker.port, { clientId: 'viewer' });
  const retained = new Promise<string>((resolve) => viewer.on('message', (topic, payload) => topic === 'site/config' && resolve(payload.toString())));
  await viewer.subscribeAsync('site/#', { qos: 0 });
  t.equal(await retained, 'v1', 'retained message restored');
  await Promise.all([back.endAsync(), other.endAsync(), viewer.endAsync()]);
  t.same(
    (await broker.persistence.subscriptionsByClient({ id: 'dev-a' })).map((s) => [s.topic, s.qos]),
    [['alarm/#', 1]],
    'stored subscription',
  );
});

t.test('wills and incoming QoS 2 packets survive, wills keep the dead broker id', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-broker-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'db');
  const first = createBrokerPersistence({ path });
  await first.setup({ id: 'old-broker' });
  await first.putWill({ id: 'meter' }, { cmd: 'publish', topic: 'meter/status', payload: Buffer.from('offline'), qos: 1, retain: true });
  await first.incomingStorePacket({ id: 'meter' }, { cmd: 'publish', topic: 'm/x', payload: Buffer.from([0, 1, 255]), qos: 2, messageId: 42 });
  await first.storeRetained({ cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 0, retain: true });
  await first.storeRetained({ cmd: 'publish', topic: 'a/b', payload: Buffer.alloc(0), qos: 0, retain: true });
  await first.destroy();

  const second = createBrokerPersistence({ path });
  await second.setup({ id: 'new-broker' });
  t.teardown(() => second.destroy());
  const will = await second.getWill({ id: 'meter' });
  t.equal(will?.brokerId, 'old-broker', 'will keeps the id of the broker that died');
  t.same(will?.payload, Buffer.from('offline'));
  const wills: unknown[] = [];
  for await (const w of second.streamWill({ 'new-broker': Date.now() })) wills.push(w);
  t.equal(wills.length, 1, 'streamed for publication by the new broker');
  const incoming = await second.incomingGetPacket({ id: 'meter' }, { messageId: 42 });
  t.same(incoming.payload, Buffer.from([0, 1, 255]), 'binary payload intact');
  t.equal(incoming.messageId, 42);
  const retained: unknown[] = [];
  for await (const p of second.createRetainedStream('#')) retained.push(p);
  t.same(retained, [], 'deleted retained message stays deleted');
});
