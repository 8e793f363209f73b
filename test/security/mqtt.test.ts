import t from 'tap';
import mqtt from 'mqtt';
import { connect as netConnect, type Socket } from 'node:net';
import { generate } from 'mqtt-packet';
import { readFileSync } from 'node:fs';
import { eventually, startTestGateway } from '../helpers/gateway.js';
import { hashPassword } from '../../runtime/auth/passwords.js';
import { aclPatternProblem, mayPublish, maySubscribe } from '../../runtime/auth/mqtt-acl.js';
import { Bus } from '../../runtime/bus.js';
import { createLogger } from '../../runtime/log.js';
import { ApiClient, ADMIN_PASSWORD, selfSignedCert, startSecureSite } from './harness.js';

/** Connects, or rejects on an error or on a close before CONNACK (a refused websocket upgrade only closes). */
function connect(url: string, opts: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 3000, ...opts });
    const fail = (err?: Error) => {
      client.end(true);
      reject(err ?? new Error('connection closed before CONNACK'));
    };
    client.once('error', fail);
    client.once('close', () => fail());
    client.once('connect', () => {
      client.off('error', fail);
      client.removeAllListeners('close');
      resolve(client);
    });
  });
}

t.test('ACL patterns: topic filters, globs inside a level, %u', async (t) => {
  const acl = { publish: ['outpost/dp/meter1.*/value', 'devices/%u/+'], subscribe: ['outpost/dp/+/set', 'outpost/dp/meter1.*/#'] };
  t.ok(mayPublish(acl, 'm', 'outpost/dp/meter1.power/value'));
  t.ok(mayPublish(acl, 'm', 'outpost/dp/meter1.energy.total/value'));
  t.notOk(mayPublish(acl, 'm', 'outpost/dp/meter2.power/value'), 'another device');
  t.notOk(mayPublish(acl, 'm', 'outpost/dp/meter1.power/meta'), 'another kind of topic');
  t.notOk(mayPublish(acl, 'm', 'outpost/dp/xmeter1.power/value'), 'the glob is anchored');
  t.ok(mayPublish(acl, 'dev7', 'devices/dev7/state'));
  t.notOk(mayPublish(acl, 'dev7', 'devices/dev8/state'), '%u is the own name only');
  t.notOk(mayPublish(acl, '+', 'devices/x/state'), 'a wildcard username does not widen the ACL');
  t.ok(maySubscribe(acl, 'm', 'outpost/dp/+/set'));
  t.ok(maySubscribe(acl, 'm', 'outpost/dp/site.mode/set'), 'a narrower filter is covered');
  t.notOk(maySubscribe(acl, 'm', 'outpost/dp/#'), 'a wider filter is not');
  t.notOk(maySubscribe(acl, 'm', '#'));
  t.ok(maySubscribe(acl, 'm', 'outpost/dp/meter1.power/#'));
  t.notOk(maySubscribe(acl, 'm', 'outpost/dp/+/value'), '+ is wider than meter1.*');
  t.equal(aclPatternProblem('a/#/b'), '# must be the last level');
  t.match(aclPatternProblem('a/b+/c'), /whole level/);
  t.equal(aclPatternProblem('outpost/dp/%u.*/value'), undefined);
});

t.test('per-device MQTT users with topic ACLs, over real MQTT.js clients', async (t) => {
  const passwordHash = await hashPassword('meter1-secret');
  const gw = await startTestGateway(t, {
    broker: {
      anonymous: 'never',
      users: [
        { username: 'meter1', passwordHash, publish: ['outpost/dp/meter1.*/value'], subscribe: ['outpost/dp/meter1.*/#'] },
        { username: 'plant', passwordHash, publish: ['outpost/dp/%u.*/value'], subscribe: [] },
      ],
    },
  });
  await t.rejects(connect(gw.mqttUrl), 'anonymous is refused when broker.anonymous is never (as beyond loopback)');
  await t.rejects(connect(gw.mqttUrl, { username: 'meter1', password: 'wrong' }), 'a wrong password is refused');

  const meter = await connect(gw.mqttUrl, { username: 'meter1', password: 'meter1-secret' });
  t.teardown(() => void meter.end(true));
  await meter.publishAsync('outpost/dp/meter1.power/value', JSON.stringify({ v: 1234 }), { qos: 1 });
  await eventually(() => gw.gateway.store.latest('meter1.power')?.v === 1234);
  t.pass('the meter publishes its own datapoint');

  // MQTT.js turns a SUBACK return code 0x80 into an error.
  await t.rejects(meter.subscribeAsync('#'), /Subscribe error/, 'SUBACK refuses the wide filter');
  const granted = await meter.subscribeAsync('outpost/dp/meter1.power/value');
  t.same(
    granted.map((g) => [g.topic, g.qos]),
    [['outpost/dp/meter1.power/value', 0]],
    'and grants the own one',
  );

  const closed = new Promise<void>((resolve) => meter.once('close', () => resolve()));
  meter.publish('outpost/dp/meter2.power/value', JSON.stringify({ v: 666 }), { qos: 1 });
  await closed;
  t.pass("publishing another device's datapoint drops the connection");
  await new Promise((r) => setTimeout(r, 100));
  t.equal(gw.gateway.store.latest('meter2.power'), undefined, 'and nothing was stored');
  t.ok(
    gw.logs.some((l) => l.msg === 'MQTT ACL refused (repeats are not logged)' && l.username === 'meter1' && l.topic === 'outpost/dp/meter2.power/value'),
    'the refusal is logged with who and what',
  );

  const plant = await connect(gw.mqttUrl, { username: 'plant', password: 'meter1-secret' });
  t.teardown(() => void plant.end(true));
  await plant.publishAsync('outpost/dp/plant.flow/value', JSON.stringify({ v: 3 }), { qos: 1 });
  await eventually(() => gw.gateway.store.latest('plant.flow')?.v === 3);
  t.pass('%u lets a device publish under its own name');
  t.notOk(JSON.stringify(gw.logs).includes('meter1-secret'), 'no MQTT password in the logs');
});

t.test('MQTT password guessing is throttled per address, before any hashing', async (t) => {
  const passwordHash = await hashPassword('meter1-secret');
  const gw = await startTestGateway(t, { broker: { anonymous: 'never', users: [{ username: 'meter1', passwordHash }] } });
  for (let i = 0; i < 5; i++)
    await t.rejects(connect(gw.mqttUrl, { username: 'meter1', password: `guess-${i}`, reconnectPeriod: 0 }), `guess ${i + 1} refused`);
  // The sixth attempt, even with the right password, is refused until the window passes.
  await t.rejects(connect(gw.mqttUrl, { username: 'meter1', password: 'meter1-secret', reconnectPeriod: 0 }), 'the right password is refused while throttled');
  t.ok(
    gw.logs.some((l) => l.msg === 'MQTT login refused: too many failures from this address' && l.username === 'meter1'),
    'the throttling is logged',
  );
  // Unknown users are refused the same way and count toward the address limit.
  await t.rejects(connect(gw.mqttUrl, { username: 'nobody', password: 'x', reconnectPeriod: 0 }), 'an unknown user is refused');
});

t.test('broker bounds: packet size, client count, MQTTS', async (t) => {
  const log = createLogger({ level: 'silent', pretty: false });
  const tls = await selfSignedCert(t);
  const bus = await Bus.create({
    log,
    anonymous: 'loopback',
    users: [],
    limits: { maxConnections: 2, maxPacketBytes: 2048, maxInflight: 10, drainTimeoutMs: 10_000 },
  });
  t.teardown(() => bus.close());
  const port = await bus.listen('127.0.0.1', 0);
  const url = `mqtt://127.0.0.1:${port}`;

  const a = await connect(url, { clientId: 'a' });
  t.teardown(() => void a.end(true));
  const got: string[] = [];
  a.on('message', (_t, p) => got.push(p.toString()));
  await a.subscribeAsync('x/#');
  const b = await connect(url, { clientId: 'b' });
  t.teardown(() => void b.end(true));
  await b.publishAsync('x/small', 'ok', { qos: 1 });
  await eventually(() => got.includes('ok'));

  await t.rejects(connect(url, { clientId: 'c' }), /Server unavailable|unavailable/i, 'a third client is refused with CONNACK 3 at maxConnections 2');

  const closed = new Promise<void>((resolve) => b.once('close', () => resolve()));
  b.publish('x/big', Buffer.alloc(4096, 1), { qos: 0 });
  await closed;
  t.pass('a packet over maxPacketBytes drops the connection');
  t.notOk(
    got.some((p) => p.length > 2048),
    'and is never delivered',
  );

  // A raw header announcing 200 MB is refused after 5 bytes, not buffered.
  const raw = netConnect(port, '127.0.0.1');
  await new Promise<void>((resolve) => raw.once('connect', () => resolve()));
  const rawClosed = new Promise<void>((resolve) => raw.once('close', () => resolve()));
  raw.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f]));
  await rawClosed;
  t.pass('an announced 256 MB CONNECT is cut off at once');

  await a.publishAsync('x/after', 'still-up', { qos: 1 });
  await eventually(() => got.includes('still-up'));
  t.pass('the broker serves the others on');

  const tlsPort = await bus.listenTls('127.0.0.1', 0, { certFile: tls.certFile, keyFile: tls.keyFile });
  const secure = await connect(`mqtts://127.0.0.1:${tlsPort}`, { clientId: 'tls', ca: readFileSync(tls.certFile) });
  t.teardown(() => void secure.end(true));
  await secure.publishAsync('x/tls', 'over-tls', { qos: 1 });
  await eventually(() => got.includes('over-tls'));
  t.pass('MQTTS from configured certificate files');
});

t.test("the dashboard's MQTT over websocket needs a login and the same origin, and only reads", async (t) => {
  const site = await startSecureSite(t, { adapters: [{ id: 'site', type: 'simulated', interval: 60_000 }], auth: { loopback: 'none' } });
  const wsUrl = site.url.replace('http', 'ws') + '/mqtt';
  await t.rejects(connect(wsUrl), 'no session: the upgrade is refused');
  const c = new ApiClient(site.url);
  await c.login('admin', ADMIN_PASSWORD);
  await t.rejects(
    connect(wsUrl, { wsOptions: { headers: { cookie: c.cookie!, origin: 'http://evil.example' } } }),
    'a foreign Origin is refused (cross-site websocket hijacking)',
  );
  const ws = await connect(wsUrl, { wsOptions: { headers: { cookie: c.cookie!, origin: site.url } } });
  t.teardown(() => void ws.end(true));
  const seen: Array<{ topic: string; v: unknown }> = [];
  ws.on('message', (topic, payload) => seen.push({ topic, v: JSON.parse(payload.toString()).v }));
  await ws.subscribeAsync('outpost/dp/+/value');
  await site.gateway.ingest.accept('site', 'site.grid.power', { v: 4321 });
  await eventually(() => seen.some((s) => s.topic === 'outpost/dp/site.grid.power/value' && s.v === 4321));
  t.pass('a logged-in browser sees live values');
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  ws.publish('outpost/dp/site.hvac.setpoint/set', JSON.stringify({ v: 25 }), { qos: 1 });
  await closed;
  t.pass('a publish over the dashboard socket drops it: writes go through the REST API and its roles');
  await new Promise((r) => setTimeout(r, 100));
  t.equal(site.gateway.store.latest('site.hvac.setpoint')?.v, 21);

  // A live connection does not outlive its login: logging out closes it.
  const live = await connect(wsUrl, { wsOptions: { headers: { cookie: c.cookie!, origin: site.url } }, reconnectPeriod: 0 });
  t.teardown(() => void live.end(true));
  const ended = new Promise<void>((resolve) => live.once('close', () => resolve()));
  const logout = await c.request('POST', '/api/auth/logout');
  t.ok(logout.status >= 200 && logout.status < 300, `logged out (${logout.status})`);
  await ended;
  t.pass('the dashboard socket of that session was closed');
  await t.rejects(connect(wsUrl, { wsOptions: { headers: { cookie: c.cookie!, origin: site.url } } }), 'and the old cookie cannot open a new one');
});

t.test('parallel guessing over MQTT: sixty wrong passwords and the right one at once get five checks, the right one refused', async (t) => {
  const passwordHash = await hashPassword('meter1-secret');
  const gw = await startTestGateway(t, { log: { level: 'info' }, broker: { anonymous: 'never', users: [{ username: 'meter1', passwordHash }] } });
  const port = Number(new URL(gw.mqttUrl).port);
  // Raw connections, all CONNECTs written before any answer: the checks overlap.
  const sockets: Socket[] = [];
  t.teardown(() => {
    for (const s of sockets) s.destroy();
  });
  const attempt = (password: string) =>
    new Promise<number | 'closed'>((resolve) => {
      const socket = netConnect({ host: '127.0.0.1', port });
      sockets.push(socket);
      socket.on('error', () => undefined);
      socket.once('connect', () =>
        socket.write(
          generate({
            cmd: 'connect',
            protocolId: 'MQTT',
            protocolVersion: 4,
            clean: true,
            clientId: `guess-${password}`,
            keepalive: 0,
            username: 'meter1',
            password: Buffer.from(password),
          }),
        ),
      );
      socket.once('data', (d: Buffer) => resolve(d[0] === 0x20 ? d[3]! : -1));
      socket.once('close', () => resolve('closed'));
    });
  const codes = await Promise.all([...Array.from({ length: 60 }, (_, i) => attempt(`wrong-${i}`)), attempt('meter1-secret')]);
  t.not(codes[60], 0, `the right password, sent with the guesses, is refused (CONNACK ${codes[60]})`);
  t.equal(codes.filter((c) => c === 0).length, 0, 'no guess got in');
  const hashed = gw.logs.filter((l) => l.msg === 'MQTT login failed').length;
  t.ok(hashed <= 5, `${hashed} passwords were checked (maxFailures 5); the rest refused before hashing`);
});
