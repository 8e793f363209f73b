import t from 'tap';
import mqtt from 'mqtt';
import { readFile } from 'node:fs/promises';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { Mosquitto, makeTestPki } from './helpers/mosquitto.js';
import { Receiver } from './helpers/receiver.js';
import { GATEWAY_ID, sensors, startSync, writeReadings } from './helpers/sync.js';
import { SyncService } from '../../runtime/sync/service.js';
import { sparkplugCodec } from '../../runtime/sync/sparkplug.js';
import { createLogger } from '../../runtime/log.js';

const T0 = Date.UTC(2025, 0, 1);
const fast = { pollMs: 20, backoff: { initialMs: 50, maxMs: 300 }, datapointsIntervalMs: 0 };

t.test('TLS with a test CA and a client certificate', async (t) => {
  const pki = await makeTestPki(t);
  const broker = await Mosquitto.create(t, { tls: { caFile: pki.ca, certFile: pki.serverCert, keyFile: pki.serverKey, requireCertificate: true } });
  const receiver = await Receiver.connect(t, broker.url, {
    clientId: 'central-tls',
    ca: await readFile(pki.ca),
    cert: await readFile(pki.clientCert),
    key: await readFile(pki.clientKey),
  });
  const gw = await startTestGateway(t, { datapoints: sensors(['a.x']), storage: { sync: false } });
  await writeReadings(gw, ['a.x'], 300, T0);
  const { sync } = await startSync(t, gw, {
    ...fast,
    links: [{ name: 'central', type: 'mqtt', url: broker.url, reconnectMs: 100, tls: { caFile: pki.ca, certFile: pki.clientCert, keyFile: pki.clientKey } }],
  });
  await eventually(() => receiver.records.length === 300, 10_000);
  t.equal((await sync.snapshot()).links[0]!.state, 'up');

  // A broker whose certificate is not signed by the configured CA is refused: nothing sent, link not up.
  const gw2 = await startTestGateway(t, { datapoints: sensors(['a.x']), storage: { sync: false } });
  await writeReadings(gw2, ['a.x'], 10, T0);
  const { sync: wrongCa } = await startSync(t, gw2, {
    ...fast,
    links: [
      { name: 'central', type: 'mqtt', url: broker.url, reconnectMs: 100, tls: { caFile: pki.otherCa, certFile: pki.clientCert, keyFile: pki.clientKey } },
    ],
  });
  const snap = (await eventually(async () => {
    const s = await wrongCa.snapshot();
    return s.links[0]!.lastError ? s : undefined;
  }))!;
  t.not(snap.links[0]!.state, 'up');
  t.match(snap.links[0]!.lastError, /certificate|self.signed|unable to verify/i);
  t.equal(snap.acked, 0);

  // Missing certificate file: a typed configuration error at start.
  const bad = new SyncService({
    config: { enabled: true, links: [{ name: 'central', type: 'mqtt', url: broker.url, tls: { caFile: '/nonexistent/ca.pem' } }] },
    store: gw2.gateway.store,
    ingest: gw2.gateway.ingest,
    log: createLogger({ level: 'silent', pretty: false }),
    clock: gw2.gateway.clock,
    gatewayId: GATEWAY_ID,
    dataDir: gw2.dataDir,
  });
  await t.rejects(bad.start(), { code: 'SYNC_CONFIG', message: /tls.caFile/ });
});

t.test('username/password: wrong password keeps the link down, right one drains', async (t) => {
  const broker = await Mosquitto.create(t, { users: { gw1: 's3cret-pass', central: 'central-pass' } });
  const receiver = await Receiver.connect(t, broker.url, { clientId: 'central-auth', username: 'central', password: 'central-pass' });
  const gw = await startTestGateway(t, { datapoints: sensors(['a.x']), storage: { sync: false } });
  await writeReadings(gw, ['a.x'], 50, T0);
  const { sync, logs } = await startSync(t, gw, {
    ...fast,
    links: [{ name: 'central', type: 'mqtt', url: broker.url, reconnectMs: 100, username: 'gw1', password: 'wrong' }],
  });
  const snap = (await eventually(async () => {
    const s = await sync.snapshot();
    return s.links[0]!.lastError ? s : undefined;
  }))!;
  t.match(snap.links[0]!.lastError, /Not authorized|Bad username/i);
  t.equal(receiver.records.length, 0);
  t.notOk(JSON.stringify(logs).includes('wrong'), 'the password never reaches the log');
  await sync.stop();

  const { sync: ok } = await startSync(t, gw, {
    ...fast,
    links: [{ name: 'central', type: 'mqtt', url: broker.url, reconnectMs: 100, username: 'gw1', password: 's3cret-pass' }],
  });
  await eventually(() => receiver.records.length === 50, 10_000);
  t.equal((await ok.snapshot()).acked, 50);
});

t.test('downlink: setpoint round trip with acknowledgement, and refusals with reasons', async (t) => {
  const broker = await Mosquitto.create(t);
  const gw = await startTestGateway(t, {
    datapoints: [
      { id: 'plant.boiler.setpoint', kind: 'actuator', type: 'number', unit: '°C', min: 30, max: 80 },
      { id: 'plant.boiler.temp', kind: 'sensor', type: 'number' },
    ],
    storage: { sync: false },
  });
  // Unsigned commands, as before issue 19: signed commands are tested in mqtt-downlink.test.ts.
  const { sync } = await startSync(t, gw, { ...fast, links: [{ name: 'central', type: 'mqtt', url: broker.url, reconnectMs: 100, downlinkAuth: 'none' }] });
  const central = await mqtt.connectAsync(broker.url, { clientId: 'central-cmd' });
  t.teardown(() => central.endAsync(true));
  const acks: Array<Record<string, unknown>> = [];
  central.on('message', (_topic, payload) => acks.push(JSON.parse(payload.toString())));
  await central.subscribeAsync(`sites/${GATEWAY_ID}/ack`, { qos: 1 });
  // The link subscribes once connected; wait for its online status.
  await eventually(async () => {
    const sub = await mqtt.connectAsync(broker.url);
    const got = await new Promise<boolean>((resolve) => {
      sub.on('message', (_t, p) => resolve(JSON.parse(p.toString()).state === 'online'));
      void sub.subscribeAsync(`sites/${GATEWAY_ID}/status`);
      setTimeout(() => resolve(false), 300);
    });
    await sub.endAsync(true);
    return got;
  });
  const cmd = (body: unknown, name = 'setpoint') =>
    central.publishAsync(`sites/${GATEWAY_ID}/cmd/${name}`, typeof body === 'string' ? body : JSON.stringify(body), { qos: 1 });

  await cmd({ requestId: 'r1', id: 'plant.boiler.setpoint', v: 55 });
  const ok = await eventually(() => acks.find((a) => a.requestId === 'r1'));
  t.match(ok, { requestId: 'r1', ok: true, result: { id: 'plant.boiler.setpoint', v: 55 } });
  t.equal(gw.gateway.store.latest('plant.boiler.setpoint')?.v, 55, 'landed on the local bus and in storage like a local write');

  await cmd({ requestId: 'r2', id: 'plant.boiler.setpoint', v: 95 });
  t.match(await eventually(() => acks.find((a) => a.requestId === 'r2')), { ok: false, error: { code: 'SETPOINT_OUT_OF_RANGE' } });
  await cmd({ requestId: 'r3', id: 'plant.boiler.temp', v: 20 });
  t.match(await eventually(() => acks.find((a) => a.requestId === 'r3')), { ok: false, error: { code: 'DP_NOT_ACTUATOR' } });
  await cmd({ requestId: 'r4', id: 'nope', v: 1 });
  t.match(await eventually(() => acks.find((a) => a.requestId === 'r4')), { ok: false, error: { code: 'DP_UNKNOWN' } });
  await cmd({ requestId: 'r5', id: 'plant.boiler.setpoint', v: 40, expires: Date.now() - 1000 });
  t.match(await eventually(() => acks.find((a) => a.requestId === 'r5')), { ok: false, error: { code: 'SETPOINT_EXPIRED' } });
  await cmd({ id: 'plant.boiler.setpoint', v: 40 });
  t.match(await eventually(() => acks.find((a) => a.requestId === null && (a.error as { message: string })?.message.includes('requestId'))), {
    ok: false,
    error: { code: 'SYNC_COMMAND_INVALID' },
  });
  await cmd('{not json');
  await eventually(() => acks.some((a) => (a.error as { message?: string })?.message === 'command payload is not JSON'));
  await cmd({ requestId: 'r6' }, 'reboot');
  t.match(await eventually(() => acks.find((a) => a.requestId === 'r6')), {
    ok: false,
    error: { code: 'SYNC_COMMAND_INVALID', message: /unknown command "reboot"/ },
  });
  await cmd({ requestId: 'r7' }, 'ping');
  t.match(await eventually(() => acks.find((a) => a.requestId === 'r7')), { ok: true, result: { pong: Number } });

  // A redelivered command (same requestId) is answered again but not applied twice.
  await cmd({ requestId: 'r1', id: 'plant.boiler.setpoint', v: 60 });
  await eventually(() => acks.filter((a) => a.requestId === 'r1').length === 2);
  t.equal(gw.gateway.store.latest('plant.boiler.setpoint')?.v, 55, 'same requestId is not applied again');
  const metrics = await (await fetch(`${gw.httpUrl}/metrics`)).text();
  t.match(metrics, /outpost_sync_downlink_total\{command="setpoint",result="ok"\} 1/);
  t.match(metrics, /outpost_sync_downlink_total\{command="setpoint",result="SETPOINT_OUT_OF_RANGE"\} 1/);

  // A schedule: every value checked on arrival like a local setpoint, each applied at its time.
  const at1 = Date.now() + 1500;
  const at2 = at1 + 500;
  await cmd(
    {
      requestId: 's1',
      id: 'plant.boiler.setpoint',
      entries: [
        { at: new Date(at2).toISOString(), v: 64 },
        { at: at1, v: 62 },
      ],
    },
    'schedule',
  );
  t.match(await eventually(() => acks.find((a) => a.requestId === 's1')), {
    ok: true,
    result: {
      id: 'plant.boiler.setpoint',
      entries: [
        { at: at1, v: 62 },
        { at: at2, v: 64 },
      ],
    },
  });
  await eventually(() => gw.gateway.store.latest('plant.boiler.setpoint')?.v === 64, 10_000);
  const applied = (await gw.gateway.store.query('plant.boiler.setpoint', { from: at1 - 1000 })).map((p) => ({
    v: p.v,
    onTime: p.t >= (p.v === 62 ? at1 : at2),
  }));
  t.same(
    applied,
    [
      { v: 62, onTime: true },
      { v: 64, onTime: true },
    ],
    'applied in order, none before its time',
  );
  t.same(sync.schedules!.list(), {}, 'nothing left pending');
  // One bad value refuses the whole schedule, naming the entry.
  await cmd(
    {
      requestId: 's2',
      id: 'plant.boiler.setpoint',
      entries: [
        { at: Date.now() + 60_000, v: 50 },
        { at: Date.now() + 120_000, v: 99 },
      ],
    },
    'schedule',
  );
  t.match(await eventually(() => acks.find((a) => a.requestId === 's2')), { ok: false, error: { code: 'SETPOINT_OUT_OF_RANGE', message: /entries\[1\]/ } });
  await cmd({ requestId: 's3', id: 'plant.boiler.temp', entries: [{ at: Date.now() + 60_000, v: 20 }] }, 'schedule');
  t.match(await eventually(() => acks.find((a) => a.requestId === 's3')), { ok: false, error: { code: 'DP_NOT_ACTUATOR' } });
  t.same(sync.schedules!.list(), {}, 'refused schedules leave nothing pending');
  // A pending schedule survives a restart of the sync service (kept in a file).
  await cmd({ requestId: 's4', id: 'plant.boiler.setpoint', entries: [{ at: Date.now() + 3_600_000, v: 45 }] }, 'schedule');
  await eventually(() => acks.some((a) => a.requestId === 's4'));
  await sync.stop();
  const { sync: again } = await startSync(t, gw, {
    ...fast,
    links: [{ name: 'central', type: 'mqtt', url: broker.url, reconnectMs: 100, downlinkAuth: 'none' }],
  });
  t.match(again.schedules!.list(), { 'plant.boiler.setpoint': [{ v: 45 }] }, 'pending after a restart');
});

t.test('Sparkplug B: NBIRTH/DBIRTH/DDATA/NDATA decoded by sparkplug-payload, seq 0-255, rebirth on NCMD', async (t) => {
  const broker = await Mosquitto.create(t);
  const msgs: Array<{ topic: string; p: ReturnType<typeof sparkplugCodec.decodePayload> }> = [];
  const host = await mqtt.connectAsync(broker.url, { clientId: 'scada-host' });
  t.teardown(() => host.endAsync(true));
  // What the edge node publishes (the host's own NCMD echoes back on spBv1.0/#: not ours).
  host.on('message', (topic, payload) => {
    if (!topic.includes('/NCMD/')) msgs.push({ topic, p: sparkplugCodec.decodePayload(payload) });
  });
  await host.subscribeAsync('spBv1.0/#', { qos: 1 });

  const gw = await startTestGateway(t, {
    datapoints: [...sensors(['plant.m1.power', 'plant.m2.power', 'yard.temp', 'uptime']), { id: 'plant.pump.on', kind: 'sensor', type: 'boolean' }],
    storage: { sync: false },
  });
  await gw.gateway.ingest.acceptMany('test', [
    { id: 'plant.m1.power', v: 1.5, t: T0 },
    { id: 'yard.temp', v: 12, t: T0 },
    { id: 'uptime', v: 3600, t: T0 },
    { id: 'plant.pump.on', v: true, t: T0 + 1 },
    { id: 'plant.m2.power', v: null, t: T0 + 2, q: 'bad' },
  ]);
  const link = { name: 'scada', type: 'mqtt', url: broker.url, reconnectMs: 100, format: 'sparkplug', sparkplug: { groupId: 'plants' } };
  const { sync } = await startSync(t, gw, { ...fast, links: [link] });
  await eventually(async () => (await sync.snapshot()).acked === 5, 10_000);
  await eventually(() => msgs.some((m) => m.topic.includes('DDATA/gw1/yard')));

  const nbirth = msgs.find((m) => m.topic === `spBv1.0/plants/NBIRTH/${GATEWAY_ID}`)!;
  t.ok(nbirth, 'NBIRTH published');
  t.equal(Number(nbirth.p.seq), 0, 'NBIRTH seq is 0');
  t.match(nbirth.p.metrics, [
    { name: 'bdSeq', type: 'Int64' },
    { name: 'Node Control/Rebirth', type: 'Boolean', value: false },
  ]);
  const dbirth = msgs.find((m) => m.topic === `spBv1.0/plants/DBIRTH/${GATEWAY_ID}/plant`)!;
  t.ok(dbirth, 'DBIRTH for device "plant"');
  t.same(dbirth.p.metrics!.map((m) => m.name).sort(), ['m1/power', 'm2/power', 'pump/on']);
  const ddata = msgs.find((m) => m.topic === `spBv1.0/plants/DDATA/${GATEWAY_ID}/plant`)!;
  const byName = new Map(ddata.p.metrics!.map((m) => [m.name, m]));
  t.match(byName.get('m1/power'), { type: 'Double', value: 1.5 });
  t.equal(Number(byName.get('m1/power')!.timestamp), T0, 'metric timestamp is the measurement time');
  t.match(byName.get('pump/on'), { type: 'Boolean', value: true });
  t.equal(byName.get('m2/power')!.value, null, 'bad reading is a null metric');
  t.match(Buffer.from(ddata.p.body as Uint8Array).toString(), /^gw1:1-5$/, 'idempotency key in body');
  // A node metric (id without a dot): it must be born in NBIRTH, so a rebirth precedes its NDATA.
  const ndata = msgs.find((m) => m.topic === `spBv1.0/plants/NDATA/${GATEWAY_ID}`)!;
  t.match(ndata.p.metrics, [{ name: 'uptime', value: 3600 }]);
  // Sequence numbers: consecutive (mod 256) from the latest NBIRTH.
  const lastBirth = msgs.map((m) => m.topic).lastIndexOf(`spBv1.0/plants/NBIRTH/${GATEWAY_ID}`);
  const seqs = msgs.slice(lastBirth).map((m) => Number(m.p.seq));
  t.same(
    seqs,
    seqs.map((_, i) => i % 256),
    'seq 0,1,2,... after the last NBIRTH',
  );

  // Rebirth on request.
  const before = msgs.length;
  await host.publishAsync(
    `spBv1.0/plants/NCMD/${GATEWAY_ID}`,
    Buffer.from(sparkplugCodec.encodePayload({ timestamp: Date.now(), metrics: [{ name: 'Node Control/Rebirth', type: 'Boolean', value: true }] })),
    { qos: 1 },
  );
  await eventually(() => msgs.slice(before).some((m) => m.topic.startsWith('spBv1.0/plants/DBIRTH/gw1/yard')));
  const reborn = msgs.slice(before);
  t.equal(reborn[0]!.topic, `spBv1.0/plants/NBIRTH/${GATEWAY_ID}`);
  t.equal(Number(reborn[0]!.p.seq), 0);
  t.match(reborn[0]!.p.metrics, [{ name: 'bdSeq' }, { name: 'Node Control/Rebirth' }, { name: 'uptime', value: 3600 }]);

  // plant.m2.power was first seen as null: its first real value brings its real type, in a new DBIRTH.
  const beforeTyped = msgs.length;
  await gw.gateway.ingest.acceptMany('test', [{ id: 'plant.m2.power', v: 5, t: T0 + 5 }]);
  await eventually(() => msgs.slice(beforeTyped).some((m) => m.topic === `spBv1.0/plants/DDATA/${GATEWAY_ID}/plant`));
  const typed = msgs.slice(beforeTyped);
  const rebirth = typed.find((m) => m.topic === `spBv1.0/plants/DBIRTH/${GATEWAY_ID}/plant`);
  t.ok(rebirth, 'a DBIRTH declares the new type');
  t.match(
    rebirth!.p.metrics!.find((m) => m.name === 'm2/power'),
    { type: 'Double' },
  );
  t.match(typed.find((m) => m.topic.endsWith('DDATA/gw1/plant'))!.p.metrics, [{ name: 'm2/power', type: 'Double', value: 5 }]);

  // 300 more readings: seq wraps from 255 to 0.
  for (let i = 0; i < 300; i++) await gw.gateway.ingest.acceptMany('test', [{ id: 'yard.temp', v: i, t: T0 + 10 + i }]);
  await eventually(async () => (await sync.snapshot()).acked === 306, 15_000);
  await eventually(() => msgs.filter((m) => m.topic.endsWith('DDATA/gw1/yard')).length >= 2);
  const afterRebirth = msgs.slice(before).map((m) => Number(m.p.seq));
  for (let i = 1; i < afterRebirth.length; i++)
    if (afterRebirth[i] !== (afterRebirth[i - 1]! + 1) % 256) t.fail(`seq jump ${afterRebirth[i - 1]} → ${afterRebirth[i]}`);
  t.ok(afterRebirth.length < 256 || afterRebirth.includes(0), 'seq stays within 0-255');

  // Clean stop publishes NDEATH with the session's bdSeq.
  const bd = Number(nbirth.p.metrics!.find((m) => m.name === 'bdSeq')!.value);
  await sync.stop();
  const death = (await eventually(() => msgs.find((m) => m.topic === `spBv1.0/plants/NDEATH/${GATEWAY_ID}`)))!;
  t.equal(Number(death.p.metrics!.find((m) => m.name === 'bdSeq')!.value), bd, 'NDEATH bdSeq matches NBIRTH');
});
