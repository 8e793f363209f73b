import t from 'tap';
import mqtt from 'mqtt';
import { request } from 'node:http';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { hashPassword } from '../../runtime/auth/passwords.js';

async function connect(url: string, opts: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 3000, ...opts });
}

/** Collects messages on a filter; returns a getter. */
async function collect(client: mqtt.MqttClient, filter: string): Promise<Array<{ topic: string; payload: unknown; retain: boolean }>> {
  const got: Array<{ topic: string; payload: unknown; retain: boolean }> = [];
  client.on('message', (topic, payload, packet) => {
    if (!mqttMatch(filter, topic)) return;
    let p: unknown = payload.toString();
    try {
      p = JSON.parse(payload.toString());
    } catch {
      // keep the text
    }
    got.push({ topic, payload: p, retain: packet.retain });
  });
  await client.subscribeAsync(filter, { qos: 1 });
  return got;
}

function mqttMatch(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const tp = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (f[i] !== '+' && f[i] !== tp[i]) return false;
  }
  return f.length === tp.length;
}

t.test('an external client publishes a value: PUBACK after it is stored, retained, auto-registered', async (t) => {
  const gw = await startTestGateway(t);
  const pub = await connect(gw.mqttUrl);
  t.teardown(() => pub.endAsync());
  const ts = Date.now() - 1000;
  await pub.publishAsync('outpost/dp/lab.fridge.temperature/value', JSON.stringify({ v: 4.2, t: ts }), { qos: 1 });
  // PUBACK has arrived: the value must already be durable in the store.
  const stored = await gw.gateway.store.query('lab.fridge.temperature', {});
  t.same(stored, [{ t: ts, v: 4.2 }]);
  t.match(gw.gateway.registry.get('lab.fridge.temperature'), { adapter: 'mqtt', type: 'number', kind: 'sensor' });

  const sub = await connect(gw.mqttUrl);
  t.teardown(() => sub.endAsync());
  const got = await collect(sub, 'outpost/dp/lab.fridge.temperature/+');
  await eventually(() => got.some((m) => m.topic.endsWith('/value') && m.retain));
  t.same(got.find((m) => m.topic.endsWith('/value'))!.payload, { v: 4.2, t: ts }, 'latest value is retained');
  t.match(got.find((m) => m.topic.endsWith('/meta'))!.payload, { id: 'lab.fridge.temperature', adapter: 'mqtt' }, 'metadata is retained');

  // A bare number is accepted and timestamped on arrival; the forwarded payload is normalised.
  await pub.publishAsync('outpost/dp/lab.fridge.temperature/value', '4.5', { qos: 1 });
  await eventually(() => got.some((m) => (m.payload as { v?: number }).v === 4.5));
  t.match(got.find((m) => (m.payload as { v?: number }).v === 4.5)!.payload, { v: 4.5, t: Number });

  // A late value is stored but does not replace the retained latest.
  await pub.publishAsync('outpost/dp/lab.fridge.temperature/value', JSON.stringify({ v: 9, t: ts - 60_000 }), { qos: 1 });
  t.equal((await gw.gateway.store.query('lab.fridge.temperature', {})).length, 3);
  const late = await connect(gw.mqttUrl);
  t.teardown(() => late.endAsync());
  const retained = await collect(late, 'outpost/dp/lab.fridge.temperature/value');
  await eventually(() => retained.length > 0);
  t.equal((retained[0]!.payload as { v: number }).v, 4.5, 'retained value is still the newest');
});

t.test('malformed payloads are refused, reported on the error topic, counted, logged once; the broker keeps serving', async (t) => {
  const gw = await startTestGateway(t);
  const bad = await connect(gw.mqttUrl, { clientId: 'bad-device' });
  const good = await connect(gw.mqttUrl, { clientId: 'good-device' });
  const watcher = await connect(gw.mqttUrl);
  t.teardown(() => Promise.all([bad.endAsync(), good.endAsync(), watcher.endAsync()]));
  const errors = await collect(watcher, 'outpost/dp/+/error');
  const values = await collect(watcher, 'outpost/dp/+/value');

  await good.publishAsync('outpost/dp/meter.power/value', '{"v": 100}', { qos: 1 });
  for (const payload of ['{"v": 1', 'hello', '{"value": 3}', '{"v": "NaN"}']) {
    await bad.publishAsync('outpost/dp/meter.power/value', payload, { qos: 1 });
  }
  await bad.publishAsync('outpost/dp/meter.power/value', '{"v": 1', { qos: 1 });
  await eventually(() => errors.length === 5);
  t.match(errors[0]!.payload, { topic: 'outpost/dp/meter.power/value', client: 'bad-device', error: { code: 'VALUE_MALFORMED' } });
  t.match(errors[3]!.payload, { error: { code: 'VALUE_TYPE' } }, 'a string for a number datapoint is a type error');
  t.equal(errors[0]!.retain, false);

  const stored = await gw.gateway.store.query('meter.power', {});
  t.same(
    stored.map((p) => p.v),
    [100],
    'only the good value is stored',
  );
  t.ok(bad.connected, 'the offending client is not disconnected');
  await good.publishAsync('outpost/dp/meter.power/value', '{"v": 101}', { qos: 1 });
  await eventually(() => values.some((m) => (m.payload as { v: number }).v === 101));
  t.notOk(
    values.some((m) => (m.payload as { v: unknown }).v === 1),
    'the malformed value never reaches subscribers',
  );

  const metrics = await (await fetch(`${gw.httpUrl}/metrics`)).text();
  t.match(metrics, /outpost_rejected_publish_total\{code="VALUE_MALFORMED"\} 4/);
  t.match(metrics, /outpost_rejected_publish_total\{code="VALUE_TYPE"\} 1/);
  const warnings = gw.logs.filter((l) => l.msg && String(l.msg).startsWith('MQTT publication refused') && l.code === 'VALUE_MALFORMED');
  t.equal(warnings.length, 1, 'logged once per client and code, then only counted');
});

t.test('unknown datapoints are refused when configured, and gateway-owned topics are protected', async (t) => {
  const gw = await startTestGateway(t, {
    broker: { unknownDatapoints: 'refuse' },
    adapters: [{ id: 'site', type: 'simulated', interval: 60_000 }],
  });
  const c = await connect(gw.mqttUrl, { clientId: 'intruder' });
  t.teardown(() => c.endAsync());
  const errors = await collect(c, 'outpost/dp/+/error');
  const rejected = await collect(c, 'outpost/gateway/rejected');
  await c.publishAsync('outpost/dp/new.sensor/value', '{"v": 1}', { qos: 1 });
  await c.publishAsync('outpost/dp/site.grid.power/value', '{"v": 1}', { qos: 1 });
  await c.publishAsync('outpost/adapter/site/status', '{"state":"running"}', { qos: 1, retain: true });
  await c.publishAsync('outpost/dp/BAD ID/value', '{"v": 1}', { qos: 1 });
  await eventually(() => errors.length === 2 && rejected.length === 2);
  t.match(errors[0]!.payload, { error: { code: 'DP_UNKNOWN', message: /refuse/ } });
  t.match(errors[1]!.payload, { error: { code: 'TOPIC_PROTECTED', message: /belongs to adapter "site"/ } });
  t.match(rejected[0]!.payload, { topic: 'outpost/adapter/site/status', error: { code: 'TOPIC_PROTECTED' } });
  t.match(rejected[1]!.payload, { error: { code: 'DP_INVALID' } });
  t.equal(gw.gateway.registry.get('new.sensor'), undefined);
  t.equal((await gw.gateway.store.query('site.grid.power', {})).filter((p) => p.v === 1).length, 0);
  const status = await collect(c, 'outpost/adapter/site/status');
  await eventually(() => status.length > 0);
  t.match(status[0]!.payload, { state: 'running' });
  t.notOk((status[0]!.payload as object as { restarts?: unknown }).restarts === undefined, "retained status is the gateway's, not the intruder's");
});

t.test('auto-registration from MQTT is bounded by broker.maxAutoDatapoints', async (t) => {
  const gw = await startTestGateway(t, { broker: { maxAutoDatapoints: 3 } });
  const c = await connect(gw.mqttUrl, { clientId: 'sprayer' });
  t.teardown(() => c.endAsync());
  const errors = await collect(c, 'outpost/dp/+/error');
  for (let i = 0; i < 5; i++) await c.publishAsync(`outpost/dp/spray.p${i}/value`, `{"v": ${i}}`, { qos: 1 });
  await eventually(() => errors.length === 2);
  t.same(
    errors.map((e) => e.topic),
    ['outpost/dp/spray.p3/error', 'outpost/dp/spray.p4/error'],
  );
  t.match(errors[0]!.payload, { error: { code: 'DP_LIMIT', message: /maxAutoDatapoints/ } });
  t.same(
    [0, 1, 2, 3, 4].map((i) => gw.gateway.registry.get(`spray.p${i}`) !== undefined),
    [true, true, true, false, false],
    'the first three are registered, the rest refused',
  );
  await c.publishAsync('outpost/dp/spray.p1/value', '{"v": 11}', { qos: 1 });
  await eventually(async () => (await gw.gateway.store.query('spray.p1', {})).some((p) => p.v === 11));
  t.pass('values for the registered ones are still stored');
});

t.test('setpoints over MQTT are validated and answered on set/result', async (t) => {
  const gw = await startTestGateway(t, { adapters: [{ id: 'site', type: 'simulated', interval: 60_000 }] });
  const c = await connect(gw.mqttUrl);
  t.teardown(() => c.endAsync());
  const results = await collect(c, 'outpost/dp/+/set/result');
  await c.publishAsync('outpost/dp/site.hvac.setpoint/set', '{"v": 23.5}', { qos: 1 });
  await c.publishAsync('outpost/dp/site.hvac.setpoint/set', '{"v": 40}', { qos: 1 });
  await c.publishAsync('outpost/dp/site.grid.power/set', '{"v": 1}', { qos: 1 });
  await c.publishAsync('outpost/dp/site.hvac.enabled/set', 'false', { qos: 1 });
  await eventually(() => results.length === 4);
  const by = (id: string) => results.filter((r) => r.topic === `outpost/dp/${id}/set/result`).map((r) => r.payload);
  // Results arrive when each request finishes, not in request order.
  const sp = by('site.hvac.setpoint') as Array<{ ok: boolean }>;
  t.match(
    sp.find((r) => r.ok),
    { ok: true, v: 23.5 },
  );
  t.match(
    sp.find((r) => !r.ok),
    { ok: false, error: { code: 'SETPOINT_OUT_OF_RANGE', message: /\[16, 26\]/ } },
  );
  t.match(by('site.grid.power'), [{ ok: false, error: { code: 'DP_NOT_ACTUATOR' } }]);
  t.match(by('site.hvac.enabled'), [{ ok: true, v: false }]);
  await eventually(() => gw.gateway.store.latest('site.hvac.setpoint')?.v === 23.5);
});

t.test('authentication: anonymous only from loopback, users with hashed passwords', async (t) => {
  const hash = await hashPassword('meter-secret-1');
  const gw = await startTestGateway(t, { broker: { anonymous: 'never', users: [{ username: 'meter1', passwordHash: hash }] } });
  await t.rejects(connect(gw.mqttUrl), /Not authorized/i, 'anonymous refused when anonymous is "never"');
  await t.rejects(connect(gw.mqttUrl, { username: 'meter1', password: 'wrong' }), /Bad username or password/i);
  const ok = await connect(gw.mqttUrl, { username: 'meter1', password: 'meter-secret-1' });
  t.ok(ok.connected);
  await ok.endAsync();
  t.notOk(JSON.stringify(gw.logs).includes('meter-secret-1'), 'the password never reaches the log');

  // The real authenticate hook, with a client connected from beyond loopback.
  const open = await startTestGateway(t);
  const decide = (address: string, username?: string, password?: string) =>
    new Promise<boolean>((resolve) =>
      open.gateway.bus.aedes.authenticate(
        { id: 'remote', conn: { remoteAddress: address } } as never,
        username,
        password === undefined ? undefined : Buffer.from(password),
        (err, ok) => resolve(!err && ok === true),
      ),
    );
  t.equal(await decide('127.0.0.1'), true, 'anonymous from loopback');
  t.equal(await decide('::ffff:127.0.0.1'), true);
  t.equal(await decide('192.168.1.50'), false, 'anonymous from the site network is refused');
  t.equal(await decide('192.168.1.50', 'nobody', 'x'), false);
});

t.test('MQTT over websocket on the HTTP server', async (t) => {
  const gw = await startTestGateway(t);
  const ws = await connect(gw.httpUrl.replace('http', 'ws') + '/mqtt');
  t.teardown(() => ws.endAsync());
  await ws.publishAsync('outpost/dp/ws.test/value', '{"v": 7}', { qos: 1 });
  t.same(
    (await gw.gateway.store.query('ws.test', {})).map((p) => p.v),
    [7],
  );
  const status = await new Promise<number | undefined>((resolve, reject) => {
    const req = request(`${gw.httpUrl}/nope`, {
      headers: { upgrade: 'websocket', connection: 'upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' },
    });
    req.on('response', (res) => resolve(res.statusCode));
    req.on('upgrade', () => resolve(101));
    req.on('error', reject);
    req.end();
  });
  t.equal(status, 404, 'websocket upgrades on unknown paths are refused');
});

t.test('mosquitto_pub and mosquitto_sub (real external clients) talk to the bus', async (t) => {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const run = promisify(execFile);
  const gw = await startTestGateway(t);
  const port = new URL(gw.mqttUrl).port;
  await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-q', '1', '-t', 'outpost/dp/cli.probe/value', '-m', '{"v": 12.5}']);
  t.same(
    (await gw.gateway.store.query('cli.probe', {})).map((p) => p.v),
    [12.5],
    'stored once mosquitto_pub returned (after PUBACK)',
  );
  const { stdout } = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', port, '-t', 'outpost/dp/cli.probe/value', '-C', '1', '-W', '5']);
  t.match(JSON.parse(stdout), { v: 12.5, t: Number }, 'mosquitto_sub receives the retained latest value');
});
