import t from 'tap';
import mqtt from 'mqtt';
import type { LevelStore } from '../../storage/level/level-store.js';
import type { AuditEntry } from '../../runtime/audit/entry.js';
import { HIGH } from '../../storage/level/keys.js';
import { eventually, startTestGateway } from '../helpers/gateway.js';
import { ApiClient, ADMIN_PASSWORD, startSecureSite } from '../security/harness.js';
import { drivenAdapter } from '../helpers/driven-adapter.js';

const JUNK = 'alc.1730602800000';
const KEEP = 'alc.zone1.temp';
const POINTS = 1000;
const T0 = Date.now() - 20 * 86_400_000;

/** What a refused import left behind: a datapoint named after a timestamp, with readings. */
const junkSource = drivenAdapter('junk-import', 'registers two datapoints with readings, as a file import does', async (ctx) => {
  await ctx.datapoints.register([
    { id: JUNK, kind: 'sensor', type: 'number' },
    { id: KEEP, kind: 'sensor', type: 'number', unit: '°C' },
  ]);
  const points = [];
  for (let i = 0; i < POINTS; i++) points.push({ id: JUNK, t: T0 + i * 900_000, v: i }, { id: KEEP, t: T0 + i * 900_000, v: 20 + (i % 5) });
  await ctx.bus.publishValues(points);
});

/** Retained messages a new subscriber gets on `topics` within `ms`. */
async function retained(url: string, topics: string[], ms = 600): Promise<Map<string, string>> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  const got = new Map<string, string>();
  client.on('message', (topic, payload, packet) => {
    if (packet.retain) got.set(topic, payload.toString());
  });
  await client.subscribeAsync(topics, { qos: 1 });
  await new Promise((r) => setTimeout(r, ms));
  await client.endAsync();
  return got;
}

async function dbKeys(store: LevelStore, id: string): Promise<string[]> {
  const out: string[] = [];
  for (const key of await store.testHooks.keys({ gte: '', lt: HIGH })) if (key === `m!${id}` || key.includes(`!${id}!`)) out.push(key);
  return out;
}

t.test('DELETE /api/datapoints/<id>: admins only, with its data, the retained value and an audit entry', async (t) => {
  const site = await startSecureSite(
    t,
    {
      datapoints: [{ id: 'site.mode', kind: 'actuator', type: 'string', allowed: ['auto', 'off'] }],
      adapters: [{ id: 'alc', type: 'junk-import' }],
    },
    { types: [junkSource.type] },
  );
  const gw = site.gateway;
  const store = gw.store as LevelStore;
  await eventually(async () => (await store.storedPoints(KEEP)).points === POINTS);
  const admin = new ApiClient(site.url);
  t.equal((await admin.login('admin', ADMIN_PASSWORD)).status, 200);
  for (const [username, role] of [
    ['olga', 'operator'],
    ['vera', 'viewer'],
  ])
    t.equal((await admin.request('POST', '/api/users', { username, role, password: `${username}-password-1` })).status, 201);
  const operator = new ApiClient(site.url);
  await operator.login('olga', 'olga-password-1');
  const viewer = new ApiClient(site.url);
  await viewer.login('vera', 'vera-password-1');

  const topic = `outpost/dp/${JUNK}/value`;
  const before = await retained(site.mqttUrl, [topic, `outpost/dp/${JUNK}/meta`]);
  t.ok(before.has(topic), 'before: a new subscriber gets the retained value');
  t.ok(before.has(`outpost/dp/${JUNK}/meta`), 'and the retained metadata');

  // What a deletion would remove, for the confirm step (any role may ask).
  const stored = (await (await viewer.request('GET', `/api/datapoints/${JUNK}/stored`)).json()) as Record<string, unknown>;
  t.match(stored, {
    id: JUNK,
    points: POINTS,
    oldest: T0,
    newest: T0 + (POINTS - 1) * 900_000,
    adapter: 'alc',
    mayReturn: true,
    note: /adapter "alc" is running/,
  });
  t.ok((stored.rollups as number) > 0, 'rollup buckets counted');

  // Not allowed, not known, not deletable here.
  const byViewer = await viewer.request('DELETE', `/api/datapoints/${JUNK}`);
  t.equal(byViewer.status, 403, 'viewer: 403');
  const byOperator = await operator.request('DELETE', `/api/datapoints/${JUNK}`);
  t.equal(byOperator.status, 403, 'operator: 403');
  t.match(await byOperator.json(), { error: { code: 'FORBIDDEN', message: /needs the admin role/ } });
  const unknown = await admin.request('DELETE', '/api/datapoints/no.such.point');
  t.equal(unknown.status, 404, 'unknown: 404');
  t.match(await unknown.json(), { error: { code: 'DP_UNKNOWN' } });
  const virtual = await admin.request('DELETE', '/api/datapoints/site.mode');
  t.equal(virtual.status, 409, 'a datapoint of the config: 409');
  t.match(await virtual.json(), { error: { code: 'DP_CONFIG_OWNED', message: /defined in the configuration file \(datapoints:\): remove it there/ } });
  t.ok(gw.registry.get('site.mode'), 'still there');
  t.equal((await store.storedPoints(JUNK)).points, POINTS, 'nothing deleted by the refused requests');

  const res = await admin.request('DELETE', `/api/datapoints/${JUNK}`);
  t.equal(res.status, 200, 'admin: 200');
  const body = (await res.json()) as Record<string, unknown>;
  t.match(body, { ok: true, id: JUNK, points: POINTS, definition: true, adapter: 'alc', mayReturn: true, outboxKept: true });
  t.equal(body.rollups, stored.rollups, 'as many rollup buckets as counted before');

  // Gone from the API, the registry and LevelDB.
  t.equal((await admin.request('GET', `/api/datapoints/${JUNK}`)).status, 404, 'GET now 404');
  const list = (await (await admin.request('GET', '/api/datapoints')).json()) as { items: Array<{ id: string }> };
  t.notOk(
    list.items.some((d) => d.id === JUNK),
    'not listed',
  );
  t.ok(
    list.items.some((d) => d.id === KEEP),
    'its neighbour is',
  );
  t.same(await store.query(JUNK, { from: 0, to: Date.now() }), [], 'no readings by a query');
  t.same(await store.queryAggregate(JUNK, { from: T0, to: Date.now(), interval: 86_400_000, agg: 'count' }), [], 'no rollups by a query');
  t.same(await dbKeys(store, JUNK), [], 'no key of it in LevelDB');
  t.equal(store.latest(JUNK), undefined, 'no latest value');
  t.equal((await store.storedPoints(KEEP)).points, POINTS, 'the other datapoint keeps its readings');
  t.ok(
    (await store.readOutbox(0, 100_000)).some((r) => r.id === JUNK),
    'outbox records already queued stay',
  );
  t.equal((await admin.request('DELETE', `/api/datapoints/${JUNK}`)).status, 404, 'deleting it again: 404');

  // A new subscriber gets nothing retained for it; the other datapoint's value still is.
  const after = await retained(site.mqttUrl, [topic, `outpost/dp/${JUNK}/meta`, `outpost/dp/${KEEP}/value`]);
  t.notOk(after.has(topic), 'retained value gone for a new subscriber');
  t.notOk(after.has(`outpost/dp/${JUNK}/meta`), 'retained metadata gone');
  t.ok(after.has(`outpost/dp/${KEEP}/value`), 'the other retained value is still served');

  // The audit trail: who, from where, what, how many.
  const audit = (await (await admin.request('GET', '/api/audit?action=datapoint.delete')).json()) as { items: AuditEntry[] };
  const ok = audit.items.find((e) => e.outcome === 'ok');
  t.match(ok, {
    action: 'datapoint.delete',
    actor: { kind: 'user', name: 'admin' },
    address: '127.0.0.1',
    target: JUNK,
    outcome: 'ok',
    details: { points: POINTS, adapter: 'alc' },
  });
  t.ok(
    audit.items.some((e) => e.outcome === 'refused' && e.actor.name === 'olga' && e.error?.code === 'FORBIDDEN'),
    'the operator’s attempt is recorded as refused',
  );
  t.ok(
    audit.items.some((e) => e.outcome === 'refused' && e.target === 'site.mode' && e.error?.code === 'DP_CONFIG_OWNED'),
    'the refused config datapoint too',
  );

  // Its adapter is running: when it reports the datapoint again (without registering it again,
  // as adapters that register once do), it is back with its definition (documented).
  await junkSource.ctx!.bus.publishValues([{ id: JUNK, t: T0, v: 5 }]);
  t.same(await store.query(JUNK, { from: 0, to: Date.now() }), [{ t: T0, v: 5 }], 'reported again by its adapter: a fresh series');
  t.match(gw.registry.get(JUNK), { id: JUNK, adapter: 'alc', type: 'number' }, 'with its definition');
  t.equal((await admin.request('GET', `/api/datapoints/${JUNK}`)).status, 200, 'listed again');
  // A datapoint of another adapter, or one never deleted, is not made up.
  await t.rejects(junkSource.ctx!.bus.publishValue('alc.never.registered', 1), { code: 'DP_UNKNOWN' });
});

t.test('the deletion survives a restart: LevelDB reopened has no trace of it', async (t) => {
  const first = await startTestGateway(t, { adapters: [{ id: 'alc', type: 'junk-import' }] }, { types: [junkSource.type] });
  const dataDir = first.dataDir;
  await eventually(async () => (await (first.gateway.store as LevelStore).storedPoints(JUNK)).points === POINTS);
  // Local tools act as admin (auth.loopback: admin in the test gateway).
  const res = await fetch(`${first.httpUrl}/api/datapoints/${JUNK}`, { method: 'DELETE' });
  t.equal(res.status, 200);
  t.match(await res.json(), { points: POINTS });
  await first.stop();

  // Started again without the adapter that made it: nothing comes back.
  const second = await startTestGateway(t, {}, { dataDir });
  t.equal((await fetch(`${second.httpUrl}/api/datapoints/${JUNK}`)).status, 404, 'unknown after the restart');
  t.same(await second.gateway.store.query(JUNK, { from: 0, to: Date.now() }), [], 'no readings after the reopen');
  t.same(await dbKeys(second.gateway.store as LevelStore, JUNK), [], 'no keys after the reopen');
  t.equal((await (second.gateway.store as LevelStore).storedPoints(KEEP)).points, POINTS, 'the other datapoint’s readings are there');
  const got = await retained(second.mqttUrl, [`outpost/dp/${JUNK}/value`, `outpost/dp/${KEEP}/value`]);
  t.notOk(got.has(`outpost/dp/${JUNK}/value`), 'no retained value after the restart');
  t.ok(got.has(`outpost/dp/${KEEP}/value`));
});
