// Unit tests of Outpost's Node-RED nodes with node-red-node-test-helper, against the
// in-process parts of a real gateway (real bus, LevelDB, simulated adapter).
import t from 'tap';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { NODES_DIR, type OutpostNodeContext } from '../../flows/node-red.js';
import { createLogger } from '../../runtime/log.js';

const require = createRequire(import.meta.url);

interface Msg {
  topic?: string;
  payload?: unknown;
  t?: number;
  [k: string]: unknown;
}
interface TestNode {
  on(event: string, fn: (arg: Msg & { args?: unknown[] }) => void): void;
  receive(msg: Msg): void;
  status: unknown;
}
interface Helper {
  init(path: string, settings?: Record<string, unknown>): void;
  settings(s: Record<string, unknown>): void;
  startServer(done: () => void): void;
  stopServer(done: () => void): void;
  load(nodes: unknown[], flow: unknown[], cb?: (err?: unknown) => void): Promise<void>;
  unload(): Promise<void>;
  getNode(id: string): TestNode;
  log(): { args: unknown[][] };
}
const helper = require('node-red-node-test-helper') as Helper;
const nodes = ['outpost-in', 'outpost-out', 'outpost-history', 'outpost-status'].map((n) => require(join(NODES_DIR, `${n}.cjs`)) as unknown);

/** Collects messages arriving at a helper node. */
function collect(node: TestNode): Msg[] {
  const got: Msg[] = [];
  node.on('input', (msg) => got.push(msg));
  return got;
}
/** Errors a node reported (node.error / done(err)), with the message they concern. */
function errors(node: TestNode): Array<{ err: unknown; msg?: Msg }> {
  const got: Array<{ err: unknown; msg?: Msg }> = [];
  node.on('call:error', (call) => got.push({ err: call.args![0], msg: call.args![1] as Msg | undefined }));
  return got;
}

t.test('Outpost nodes', async (t) => {
  const gw = await startTestGateway(t, { adapters: [{ id: 'site', type: 'simulated', interval: 100 }] });
  const g = gw.gateway;
  await eventually(() => g.store.latest('site.grid.power') && g.host?.statuses()[0]?.state === 'running');
  const ctx: OutpostNodeContext = {
    bus: g.bus,
    ingest: g.ingest,
    registry: g.registry,
    store: g.store,
    topics: g.topics,
    clock: g.clock,
    log: createLogger({ level: 'silent', pretty: false }),
    hostStatuses: () => g.host?.statuses() ?? [],
  };
  helper.init(require.resolve('node-red'), { outpost: ctx });
  await new Promise<void>((r) => helper.startServer(r));
  t.teardown(async () => {
    await helper.unload();
    await new Promise<void>((r) => helper.stopServer(r));
  });
  t.afterEach(() => helper.unload());

  t.test('outpost in: values by pattern, with metadata and the latest on deploy', async (t) => {
    await helper.load(nodes, [
      { id: 'in', type: 'outpost in', datapoints: 'site.*.power', initial: true, wires: [['out']] },
      { id: 'out', type: 'helper' },
    ]);
    const got = collect(helper.getNode('out'));
    await eventually(() => new Set(got.map((m) => m.topic)).size >= 3 && got.length > 6);
    const topics = new Set(got.map((m) => m.topic));
    t.same([...topics].sort(), ['site.grid.power', 'site.load.power', 'site.pv.power']);
    const m = got.find((x) => x.topic === 'site.grid.power')!;
    t.type(m.payload, 'number');
    t.type(m.t, 'number');
    t.match(m.datapoint, { adapter: 'site', type: 'number', unit: 'W' });
  });

  t.test('outpost in: a bad pattern is reported, not subscribed', async (t) => {
    await helper.load(nodes, [{ id: 'in', type: 'outpost in', datapoints: 'Site/Power#', wires: [[]] }]);
    const logged = helper.log().args.map((a) => a[0] as { level: number; id?: string; msg?: unknown });
    t.ok(
      logged.some((l) => l.level === 20 && l.id === 'in' && /not a datapoint id or pattern/.test(String(l.msg))),
      'error names the bad pattern',
    );
  });

  // Routing to a real Catch node is covered in node-red.test.ts (the helper's mock runtime
  // does not route node errors to catch nodes); here: the error and its message.
  t.test('outpost out: setpoints are validated; refusals are node errors with their code', async (t) => {
    await helper.load(nodes, [
      { id: 'set', type: 'outpost out', datapoint: 'site.hvac.setpoint', mode: 'setpoint', wires: [['ok']] },
      { id: 'ok', type: 'helper' },
    ]);
    const ok = collect(helper.getNode('ok'));
    const refused = errors(helper.getNode('set'));
    helper.getNode('set').receive({ payload: 21.5 });
    await eventually(() => ok.length === 1);
    t.match(ok[0]!.setpoint, { id: 'site.hvac.setpoint', v: 21.5 });
    helper.getNode('set').receive({ payload: 40 });
    helper.getNode('set').receive({ payload: 'warm' });
    await eventually(() => refused.length === 2);
    t.same(refused.map((e) => (e.msg!.outpostError as { code: string }).code).sort(), ['SETPOINT_OUT_OF_RANGE', 'VALUE_TYPE']);
    t.equal(g.store.latest('site.hvac.setpoint')?.v, 21.5, 'refused setpoints change nothing');
    t.equal(ok.length, 1, 'refused setpoints are not passed on');
  });

  t.test('outpost out: writing a device datapoint or a bad id is refused', async (t) => {
    await helper.load(nodes, [
      { id: 'w', type: 'outpost out', datapoint: '', mode: 'value', wires: [[]] },
      { id: 'setsensor', type: 'outpost out', datapoint: 'site.grid.power', mode: 'setpoint', wires: [[]] },
    ]);
    const w = errors(helper.getNode('w'));
    const s = errors(helper.getNode('setsensor'));
    helper.getNode('w').receive({ topic: 'site.grid.power', payload: 1 });
    helper.getNode('w').receive({ topic: 'Not An Id', payload: 1 });
    helper.getNode('setsensor').receive({ payload: 1 });
    await eventually(() => w.length === 2 && s.length === 1);
    t.same(w.map((e) => (e.msg!.outpostError as { code: string }).code).sort(), ['DP_CONFLICT', 'DP_INVALID']);
    t.equal((s[0]!.msg!.outpostError as { code: string }).code, 'DP_NOT_ACTUATOR');
    t.not(g.store.latest('site.grid.power')?.v, 1, 'the device value was not overwritten');
  });

  t.test('outpost out: a virtual datapoint is created and stored', async (t) => {
    await helper.load(nodes, [
      { id: 'v', type: 'outpost out', datapoint: 'site.derived.test', mode: 'value', valueType: 'auto', unit: 'kW', wires: [['ok']] },
      { id: 'ok', type: 'helper' },
    ]);
    const ok = collect(helper.getNode('ok'));
    helper.getNode('v').receive({ payload: 1.25 });
    await eventually(() => ok.length === 1);
    t.match(g.registry.get('site.derived.test'), { adapter: 'virtual', type: 'number', unit: 'kW' });
    t.equal(g.store.latest('site.derived.test')?.v, 1.25);
  });

  t.test('outpost history: raw values and rollups', async (t) => {
    await helper.load(nodes, [
      { id: 'h', type: 'outpost history', datapoint: 'site.grid.power', range: 3_600_000, agg: 'none', limit: 1000, wires: [['out']] },
      { id: 'hagg', type: 'outpost history', datapoint: 'site.grid.power', range: 3_600_000, agg: 'max', interval: 60, wires: [['out']] },
      { id: 'hbad', type: 'outpost history', datapoint: '', wires: [['out']] },
      { id: 'out', type: 'helper' },
    ]);
    const got = collect(helper.getNode('out'));
    const bad = errors(helper.getNode('hbad'));
    // A fixed range: the simulated adapter keeps writing while the test runs.
    const to = g.clock.now();
    const from = to - 3_600_000;
    helper.getNode('h').receive({ from, to });
    await eventually(() => got.length === 1);
    const raw = got[0]!.payload as Array<{ t: number; v: number }>;
    t.match(got[0]!.query, { id: 'site.grid.power', from, to, agg: 'none' });
    const stored = await g.store.query('site.grid.power', { from, to });
    t.ok(raw.length > 0);
    t.same(raw, stored.slice(0, raw.length), 'the stored values, oldest first');
    helper.getNode('hagg').receive({ from, to });
    await eventually(() => got.length === 2);
    const agg = got[1]!.payload as Array<{ t: number; v: number; count: number }>;
    t.ok(agg.length >= 1 && agg.length <= 2, 'one or two hourly buckets');
    // Intervals are whole hours, and the simulator keeps writing into the last one after `to`:
    // the rollup max is a reading of those hours, at least the max of [from, to].
    const aggMax = Math.max(...agg.map((a) => a.v));
    const hours = await g.store.query('site.grid.power', {
      from: Math.floor(from / 3_600_000) * 3_600_000,
      to: Math.floor(to / 3_600_000) * 3_600_000 + 2 * 3_600_000,
      limit: 100_000,
    });
    t.ok(aggMax >= Math.max(...stored.map((s) => s.v as number)), `rollup max ${aggMax} >= the max of the raw values in the range`);
    t.ok(
      hours.some((s) => s.v === aggMax),
      'and it is one of the stored readings of those hours',
    );
    helper.getNode('hbad').receive({ topic: 'no.such.point' });
    await eventually(() => bad.length === 1);
    t.equal((bad[0]!.msg!.outpostError as { code: string }).code, 'DP_UNKNOWN');
  });

  t.test('outpost status: adapter states on request and on change', async (t) => {
    await helper.load(nodes, [
      { id: 's', type: 'outpost status', adapter: '', onChange: true, wires: [['out']] },
      { id: 'out', type: 'helper' },
    ]);
    const got = collect(helper.getNode('out'));
    helper.getNode('s').receive({});
    await eventually(() => got.length >= 1);
    t.match(got[0]!.payload, [{ id: 'site', type: 'simulated', state: 'running' }]);
    t.same(got[0]!.links, []);
    // A status change published on the bus is passed on as it happens.
    await g.bus.publish(g.topics.adapterStatus('site'), JSON.stringify({ state: 'error', since: 1 }), { retain: true });
    const change = await eventually(() => got.find((m) => m.topic === 'site'));
    t.match(change!.payload, { state: 'error' });
  });
});
