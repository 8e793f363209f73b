import t, { type Test } from 'tap';
import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelStore } from '../../storage/level/level-store.js';
import { Retention, RetentionCheck, RetentionConfigSchema, RetentionPolicy, effectiveRawDays } from '../../storage/retention.js';
import type { PointRecord } from '../../storage/store.js';
import { DatapointSchema } from '../../core/datapoint.js';
import bmsFiles from '../../adapters/bms-files/index.js';
import { eventually, startTestGateway } from '../helpers/gateway.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2025, 6, 1);
const SAMPLE = new URL('../adapters/bms-files/fixtures/siemens-insight-trend-interval.csv', import.meta.url).pathname;

async function tempStore(t: Test): Promise<LevelStore> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-retention-imported-'));
  const store = new LevelStore({ path: join(dir, 'db'), sync: false });
  await store.open();
  t.teardown(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  return store;
}

t.test('precedence: a storage.retention.rules pattern, then the datapoint’s own retention, then rawDays', async (t) => {
  const config = RetentionConfigSchema.parse({
    rawDays: 90,
    rules: [{ pattern: 'debug.*' }, { pattern: 'ruled.*', rawDays: 60 }, { pattern: 'kept.*', rawDays: null }],
  });
  const policy = new RetentionPolicy(config);
  t.same(policy.explain('plain', undefined), { rawDays: 90, source: 'default' }, 'no rule, no own retention: the default');
  t.same(policy.explain('imp.x', { retention: { rawDays: null } }), { rawDays: null, source: 'datapoint' }, 'the datapoint’s own: kept for ever');
  t.same(policy.explain('imp.x', { retention: { rawDays: 30 } }), { rawDays: 30, source: 'datapoint' });
  t.same(
    policy.explain('ruled.x', { retention: { rawDays: null } }),
    { rawDays: 60, source: 'rule', pattern: 'ruled.*' },
    'a rule wins over the datapoint’s own',
  );
  t.same(policy.explain('kept.x', { retention: { rawDays: 7 } }), { rawDays: null, source: 'rule', pattern: 'kept.*' }, 'also when the rule keeps longer');
  t.same(policy.explain('debug.x', { retention: { rawDays: 5 } }), { rawDays: 5, source: 'datapoint' }, 'a rule without rawDays decides nothing');
  t.equal(effectiveRawDays(config, 'imp.x', { retention: { rawDays: null } }), null, 'the function form');
  t.equal(new Retention(undefined as never, config).rawDaysFor('imp.x', { retention: { rawDays: 12 } }), 12, 'Retention.rawDaysFor takes the definition');
  t.ok(DatapointSchema.safeParse({ id: 'a', adapter: 'x', retention: { rawDays: null } }).success, 'a definition may carry it');
  t.notOk(DatapointSchema.safeParse({ id: 'a', adapter: 'x', retention: { rawDays: -1 } }).success, 'days are positive');
  t.notOk(DatapointSchema.safeParse({ id: 'a', adapter: 'x', retention: { days: 3 } }).success, 'unknown keys refused');
});

t.test('a retention pass keeps a year-old imported history by its datapoint’s retention, deletes it by 30 days or a rule; rollups as configured', async (t) => {
  const store = await tempStore(t);
  const ids = ['imp.forever', 'imp.month', 'ruled.forever', 'plain'];
  await store.putDatapoints([
    { id: 'imp.forever', adapter: 'insight', kind: 'sensor', type: 'number', retention: { rawDays: null } },
    { id: 'imp.month', adapter: 'insight', kind: 'sensor', type: 'number', retention: { rawDays: 30 } },
    { id: 'ruled.forever', adapter: 'insight', kind: 'sensor', type: 'number', retention: { rawDays: null } },
    { id: 'plain', adapter: 'mqtt', kind: 'sensor', type: 'number' },
  ]);
  // A year of 15 min readings, 365 days back from NOW.
  const points: PointRecord[] = [];
  for (let i = 0; i < 365 * 96; i++) for (const id of ids) points.push({ id, t: NOW - 365 * DAY + i * 900_000, v: i % 100 });
  for (let i = 0; i < points.length; i += 20_000) await store.write(points.slice(i, i + 20_000));
  const config = RetentionConfigSchema.parse({ rawDays: 90, rules: [{ pattern: 'ruled.*', rawDays: 60 }], rollupDays: { '1m': 30 } });
  const report = await new Retention(store, config, () => NOW).run();

  const count = async (id: string) => (await store.storedPoints(id)).points;
  t.equal(await count('imp.forever'), 365 * 96, 'imported history with retention null: every reading kept');
  t.equal((await store.storedPoints('imp.forever')).oldest, NOW - 365 * DAY, 'the year-old one too');
  t.equal(await count('imp.month'), 30 * 96, 'retention 30 days: 30 days kept');
  t.equal(await count('ruled.forever'), 60 * 96, 'a config rule wins over the datapoint’s null: 60 days');
  t.equal(await count('plain'), 90 * 96, 'no own retention: storage.retention.rawDays');
  t.equal(report.rawExpired, 3 * 365 * 96 - (30 + 60 + 90) * 96, 'every deleted reading counted');
  // Rollups follow rollupDays whatever the raw retention: 1 min buckets beyond 30 days go, 15 min stay.
  t.equal(report.rollupsExpired['1m'], 4 * (365 - 30) * 96, '1 min rollups of every datapoint expired beyond 30 days');
  const daily = await store.queryAggregate('imp.month', { from: NOW - 365 * DAY, to: NOW - 1, interval: DAY, agg: 'count' });
  t.equal(daily.length, 365, 'deleted raw history still answered from the day rollups');
  t.ok(daily.every((d) => d.v === 96));

  // Definitions are read at every pass: lowering the datapoint's retention applies at the next one.
  await store.putDatapoints([{ id: 'imp.forever', adapter: 'insight', kind: 'sensor', type: 'number', retention: { rawDays: 100 } }]);
  await new Retention(store, config, () => NOW).run();
  t.equal(await count('imp.forever'), 100 * 96, 'changed to 100 days: applied at the next pass');
});

t.test('RetentionCheck: the readings of an import that the next pass deletes, per datapoint', async (t) => {
  const policy = new RetentionPolicy(RetentionConfigSchema.parse({ rawDays: 90, rules: [{ pattern: 'ruled.*', rawDays: 10 }] }));
  const defs: Record<string, { retention?: { rawDays: number | null } }> = {
    'imp.keep': { retention: { rawDays: null } },
    'imp.month': { retention: { rawDays: 30 } },
    'ruled.x': { retention: { rawDays: null } },
  };
  const check = new RetentionCheck(policy, (id) => defs[id], NOW);
  t.equal(check.message(), undefined, 'nothing yet');
  check.add([
    { id: 'imp.keep', t: NOW - 400 * DAY },
    { id: 'imp.month', t: NOW - 40 * DAY },
    { id: 'imp.month', t: NOW - 45 * DAY },
    { id: 'imp.month', t: NOW - 2 * DAY },
    { id: 'ruled.x', t: NOW - 11 * DAY },
    { id: 'other', t: NOW - 91 * DAY },
    { id: 'other', t: NOW - 89 * DAY },
  ]);
  t.same(check.warnings, [
    { id: 'imp.month', rawDays: 30, source: 'datapoint', readings: 2, oldest: NOW - 45 * DAY, cutoff: NOW - 30 * DAY },
    { id: 'ruled.x', rawDays: 10, source: 'rule', readings: 1, oldest: NOW - 11 * DAY, cutoff: NOW - 10 * DAY },
    { id: 'other', rawDays: 90, source: 'default', readings: 1, oldest: NOW - 91 * DAY, cutoff: NOW - 90 * DAY },
  ]);
  t.match(
    check.message(),
    /^4 reading\(s\) of 3 datapoint\(s\) are older than their raw retention and will be deleted at the next retention pass \(rollups stay\): imp\.month keeps 30 days \(its adapter's retention\), ruled\.x keeps 10 days \(storage\.retention\.rules\), other keeps 90 days \(storage\.retention\.rawDays\)$/,
  );
  const bounded = new RetentionCheck(policy, () => undefined, NOW, 2);
  bounded.add([
    { id: 'a', t: 0 },
    { id: 'b', t: 0 },
    { id: 'c', t: 0 },
    { id: 'c', t: 1 },
  ]);
  t.equal(bounded.warnings.length, 2, 'at most maxDatapoints entries');
  t.equal(bounded.moreReadings, 2, 'the rest counted');
});

t.test('bms-files: an imported 2017 Insight report survives the retention pass by default, goes with retentionRawDays: 30 or a config rule', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'outpost-retention-bms-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const source = (id: string, extra: Record<string, unknown> = {}) => ({
    id,
    type: 'bms-files',
    format: 'siemens-insight',
    dropDir: join(base, id),
    pollMs: 30,
    stableMs: 100,
    ...extra,
  });
  const gw = await startTestGateway(
    t,
    {
      gateway: { timezone: 'America/Chicago' },
      storage: { retention: { rules: [{ pattern: 'ruled.*', rawDays: 365 }] } },
      adapters: [source('keep'), source('month', { retentionRawDays: 30 }), source('ruled')],
    },
    { types: [bmsFiles as never] },
  );
  for (const id of ['keep', 'month', 'ruled']) await copyFile(SAMPLE, join(base, id, 'weitz-2018-01-02.csv'));
  for (const id of ['keep', 'month', 'ruled'])
    await eventually(async () => (await readdir(join(base, id, 'archive')).catch((): string[] => [])).length === 1, 60_000, 50);
  const store = gw.gateway.store as LevelStore;
  const dp = (await (await fetch(`${gw.httpUrl}/api/datapoints/keep.ev.rm102.v`)).json()) as Record<string, unknown>;
  t.same(dp.retention, { rawDays: null }, 'the source sets retention null on the datapoints it registers');
  const month = (await (await fetch(`${gw.httpUrl}/api/datapoints/month.ev.rm102.v`)).json()) as Record<string, unknown>;
  t.same(month.retention, { rawDays: 30 });
  const before = await store.storedPoints('keep.ev.rm102.v');
  t.equal(before.points, 16, 'imported');

  const report = await gw.gateway.retention!.run();
  const after = await store.storedPoints('keep.ev.rm102.v');
  t.same(
    [after.points, after.oldest, after.newest],
    [before.points, before.oldest, before.newest],
    'default (retentionRawDays null): the 2017 history is kept',
  );
  t.equal((await store.storedPoints('month.ev.rm102.v')).points, 0, 'retentionRawDays: 30: deleted');
  t.equal((await store.storedPoints('ruled.ev.rm102.v')).points, 0, 'a storage.retention.rules pattern (365 days) wins over the source’s null');
  t.ok(report.rawExpired > 0);
  const daily = await store.queryAggregate('month.ev.rm102.v', { from: Date.UTC(2017, 11, 25), to: Date.UTC(2018, 0, 3), interval: DAY, agg: 'count' });
  t.ok(daily.length > 0, 'its day rollups stay (rollupDays 1d: null)');
});

t.test('an MQTT client cannot set a datapoint’s retention through its metadata', async (t) => {
  const gw = await startTestGateway(t, {});
  const { default: mqtt } = await import('mqtt');
  const client = await mqtt.connectAsync(gw.mqttUrl, { reconnectPeriod: 0 });
  t.teardown(() => client.endAsync());
  const errors: string[] = [];
  client.on('message', (_topic, payload) => errors.push(payload.toString()));
  await client.subscribeAsync('outpost/dp/dev.meter/error', { qos: 1 });
  await client.publishAsync('outpost/dp/dev.meter/meta', JSON.stringify({ unit: 'kWh', retention: { rawDays: null } }), { qos: 1 });
  await eventually(() => errors.length > 0);
  t.match(JSON.parse(errors[0]!), { error: { code: 'DP_INVALID', message: /"retention" of dev\.meter is not set over MQTT: use storage\.retention\.rules/ } });
  t.equal(gw.gateway.registry.get('dev.meter')?.retention, undefined, 'not kept');
  await client.publishAsync('outpost/dp/dev.meter/meta', JSON.stringify({ unit: 'kWh' }), { qos: 1 });
  await eventually(() => gw.gateway.registry.get('dev.meter')?.unit === 'kWh');
  t.pass('metadata without it is accepted');
});
