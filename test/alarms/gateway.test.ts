// Alarms in a real gateway (LevelDB, bus, HTTP, Node-RED's node against the gateway's alarm
// API): a reading crosses a threshold → alarm active and published on `alarm.<id>`, first in
// a priority batch upstream; acknowledged through the API (audited); an adapter failing at
// start is in the event log; a restart on the same data directory keeps all of it.
import t from 'tap';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { z } from 'zod';
import { defineAdapter, type AdapterType } from '../../runtime/adapter.js';
import { OutpostError } from '../../core/errors.js';
import { compilePatterns, selectPriority } from '../../runtime/sync/priority.js';
import { NODES_DIR, type OutpostNodeContext } from '../../flows/node-red.js';
import { createLogger } from '../../runtime/log.js';
import { validateConfig } from '../../runtime/config/load.js';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { tempDir } from '../helpers/teardown.js';

const require = createRequire(import.meta.url);

const misconfigured = defineAdapter({
  type: 'misconfigured',
  description: 'fails its start with a config error',
  schema: z.strictObject({}),
  create() {
    return {
      async start() {
        throw new OutpostError('CONFIG_INVALID', 'template "meter-x": register 40001 has no type');
      },
      async stop() {},
    };
  },
}) as unknown as AdapterType;

const CONFIG = {
  datapoints: [{ id: 'plant.boiler.temp', type: 'number', unit: '°C' }],
  adapters: [{ id: 'meter', type: 'misconfigured' }],
  // A link to a port nobody listens on: it goes down, and the event log says so.
  sync: { enabled: true, links: [{ name: 'central', type: 'mqtt', url: 'mqtt://127.0.0.1:1', reconnectMs: 60_000 }] },
  alarms: {
    rules: [
      { id: 'boiler-hot', type: 'threshold', datapoint: 'plant.boiler.temp', above: 90, hysteresis: 5, severity: 'alarm', message: 'Boiler above 90 °C' },
      { id: 'meter-down', type: 'adapter', adapter: 'meter', forS: 0, severity: 'warning' },
    ],
  },
};

interface AlarmJson {
  id: string;
  active: boolean;
  source: string;
  acknowledged: boolean;
  [k: string]: unknown;
}
interface EventJson {
  id: number;
  kind: string;
  severity: string;
  message: string;
  source: string;
  data?: Record<string, unknown>;
}
interface Answer {
  status: number;
  body: { active: AlarmJson[]; cleared: AlarmJson[]; rules: unknown[]; items: EventJson[]; error?: { code: string } };
}

async function api(gw: TestGateway, method: string, path: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${gw.httpUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Answer['body'] };
}

interface Helper {
  init(path: string, settings?: Record<string, unknown>): void;
  startServer(done: () => void): void;
  stopServer(done: () => void): void;
  load(nodes: unknown[], flow: unknown[]): Promise<void>;
  unload(): Promise<void>;
  getNode(id: string): { receive(msg: object): void; on(event: string, fn: (msg: { alarm?: Record<string, unknown> }) => void): void };
}

t.test('alarms in a real gateway, across a restart', async (t) => {
  const dataDir = await tempDir(t, 'outpost-alarms-gw-');
  const gw = await startTestGateway(t, CONFIG, { types: [misconfigured], dataDir });
  const g = gw.gateway;

  // The adapter that cannot start: its alarm and its event.
  await eventually(() => g.alarms?.engine.get('meter-down')?.active);
  const failed = await eventually(async () => (await api(gw, 'GET', '/api/events?source=meter')).body.items.find((e) => e.kind === 'adapter.failed'));
  t.match(
    failed,
    { severity: 'alarm', message: /adapter meter failed, not retried: template "meter-x": register 40001 has no type/ },
    'the event log shows the adapter failure',
  );

  const down = await eventually(async () => (await api(gw, 'GET', '/api/events?source=sync')).body.items.find((e) => e.kind === 'link.down'));
  t.match(down, { severity: 'warning', message: /^sync link central down/ }, 'a sync link going down is in the event log');

  // Adapters record through the service ('events', 'gateway').
  const sink = g.services.get('events', 'gateway');
  t.ok(sink, 'the event log is provided to adapters');
  sink?.record({ source: 'cp1', kind: 'meter.stale', severity: 'warning', message: 'meter of cp1 stale' });
  t.match((await api(gw, 'GET', '/api/events?source=cp1')).body.items, [{ kind: 'meter.stale', message: 'meter of cp1 stale' }]);

  // A reading crosses the threshold.
  const published: Array<{ v: { active?: boolean } }> = [];
  await g.bus.subscribe(g.topics.value('alarm.boiler-hot'), (_topic, payload) => published.push(JSON.parse(payload.toString())));
  await g.ingest.accept('virtual', 'plant.boiler.temp', { v: 80 });
  await g.ingest.accept('virtual', 'plant.boiler.temp', { v: 93.5 });
  const raised = await eventually(() => published.find((m) => m.v.active));
  t.match(
    raised?.v,
    { active: true, severity: 'alarm', message: 'Boiler above 90 °C', acknowledged: false, subjects: ['plant.boiler.temp'], value: 93.5 },
    'alarm.boiler-hot published active',
  );
  const dp = (await api(gw, 'GET', '/api/datapoints/alarm.boiler-hot')).body;
  t.match(dp, { id: 'alarm.boiler-hot', adapter: 'alarms', type: 'json' }, 'a datapoint like any other');

  // Upstream, the alarm goes first: the sync priority picks it out of a backlog of readings.
  for (let i = 0; i < 50; i++) await g.ingest.accept('virtual', 'plant.boiler.temp', { v: 93 + i / 100 });
  const outbox = await g.store.readOutbox(0, 100_000);
  const isAlarm = compilePatterns(validateConfig({}, new Map()).sync.fallback.alarms);
  t.ok(isAlarm('alarm.boiler-hot'), 'alarm.<id> matches the default sync.fallback.alarms patterns');
  const picked = selectPriority(outbox, isAlarm, 1);
  t.equal(picked[0]?.id, 'alarm.boiler-hot', 'a one-record priority batch carries the alarm, not the newest reading');

  // Listed, then acknowledged (audited).
  const list = (await api(gw, 'GET', '/api/alarms')).body;
  t.same(
    list.active.map((a) => a.id),
    ['boiler-hot', 'meter-down'],
    'active alarms, alarms before warnings',
  );
  t.match(list.rules, [{ id: 'boiler-hot', type: 'threshold', description: 'plant.boiler.temp above 90 (hysteresis 5)', active: true }, { id: 'meter-down' }]);
  const ack = await api(gw, 'POST', '/api/alarms/boiler-hot/ack', {});
  t.match(ack, { status: 200, body: { id: 'boiler-hot', acknowledged: true, ackedBy: 'loopback', stored: true } });
  t.match(await api(gw, 'POST', '/api/alarms/boiler-hot/ack', {}), { status: 409, body: { error: { code: 'ALARM_ACKNOWLEDGED' } } });
  t.match(await api(gw, 'POST', '/api/alarms/nope/ack', {}), { status: 404, body: { error: { code: 'ALARM_UNKNOWN' } } });
  const audit = (await api(gw, 'GET', '/api/audit?action=alarm.ack')).body.items;
  t.match(audit, [
    { action: 'alarm.ack', target: 'nope', outcome: 'refused' },
    { target: 'boiler-hot', outcome: 'refused' },
    { target: 'boiler-hot', outcome: 'ok', by: 'loopback' },
  ]);
  t.match(await api(gw, 'GET', '/api/events?severity=bogus'), { status: 400 });

  // Node-RED's `outpost alarm` node against the gateway's alarm API.
  const helper = require('node-red-node-test-helper') as Helper;
  const ctx: OutpostNodeContext = {
    bus: g.bus,
    ingest: g.ingest,
    registry: g.registry,
    store: g.store,
    topics: g.topics,
    clock: g.clock,
    log: createLogger({ level: 'silent', pretty: false }),
    hostStatuses: () => g.host?.statuses() ?? [],
    alarms: g.alarms!.flows,
  };
  helper.init(require.resolve('node-red'), { outpost: ctx });
  await new Promise<void>((r) => helper.startServer(r));
  try {
    await helper.load(
      [require(join(NODES_DIR, 'outpost-alarm.cjs'))],
      [
        { id: 'a', type: 'outpost alarm', alarm: 'pump-fault', severity: 'warning', message: 'Pump P1 fault', wires: [['out']] },
        { id: 'out', type: 'helper' },
      ],
    );
    const out: Array<{ alarm?: Record<string, unknown> }> = [];
    helper.getNode('out').on('input', (m) => out.push(m));
    helper.getNode('a').receive({ payload: true });
    await eventually(() => out.length === 1);
    t.match(
      out[0].alarm,
      { id: 'pump-fault', active: true, severity: 'warning', message: 'Pump P1 fault', source: 'flows', by: 'flow:a' },
      'msg.payload true raises',
    );
    helper.getNode('a').receive({ payload: { severity: 'alarm', message: 'Pump P1 tripped' } });
    await eventually(() => out.length === 2);
    t.match(out[1]?.alarm, { active: true, severity: 'alarm', message: 'Pump P1 tripped' }, 'an object gives its own severity and message');
  } finally {
    await helper.unload();
    await new Promise<void>((r) => helper.stopServer(r));
  }
  const flowsAlarm = (await api(gw, 'GET', '/api/alarms')).body.active.find((a) => a.id === 'pump-fault');
  t.match(flowsAlarm, { source: 'flows', severity: 'alarm', acknowledged: false });
  t.ok(
    (await api(gw, 'GET', '/api/events?source=flows')).body.items.some((e) => e.kind === 'alarm.raised'),
    'source flows in the event log',
  );

  // A real restart on the same data directory.
  await gw.stop();
  const again = await startTestGateway(t, CONFIG, { types: [misconfigured], dataDir });
  const after = (await api(again, 'GET', '/api/alarms')).body;
  t.match(
    after.active.find((a) => a.id === 'boiler-hot'),
    { active: true, acknowledged: true, ackedBy: 'loopback', message: 'Boiler above 90 °C' },
    'the active alarm is still active and still acknowledged',
  );
  t.match(
    after.active.find((a) => a.id === 'pump-fault'),
    { active: true, source: 'flows', acknowledged: false },
    'and the flow alarm',
  );
  const events = (await api(again, 'GET', '/api/events?limit=500')).body.items;
  t.ok(
    events.some((e) => e.kind === 'alarm.acknowledged' && e.data?.alarm === 'boiler-hot'),
    'the event log is read back',
  );
  t.ok(
    events.some((e) => e.kind === 'gateway.stopped'),
    'the stop is in it',
  );
  // The boiler cools down: cleared, with its deadband.
  await again.gateway.ingest.accept('virtual', 'plant.boiler.temp', { v: 86 });
  t.equal(again.gateway.alarms?.engine.get('boiler-hot')?.active, true, '86 is in the deadband');
  await again.gateway.ingest.accept('virtual', 'plant.boiler.temp', { v: 85 });
  await eventually(() => again.gateway.alarms?.engine.get('boiler-hot')?.active === false);
  t.pass('cleared at 85');
});
