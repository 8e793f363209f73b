import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelStore } from '../../storage/level/level-store.js';
import { directoryBytes } from '../../storage/directory-bytes.js';
import { Retention, RetentionConfigSchema, globToRegExp } from '../../storage/retention.js';
import type { PointRecord } from '../../storage/store.js';
import { startTestGateway } from '../helpers/gateway.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2025, 6, 1);

async function tempStore(t: Test, sync = false): Promise<LevelStore> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-retention-'));
  const store = new LevelStore({ path: join(dir, 'db'), sync });
  await store.open();
  t.teardown(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  return store;
}

t.test('glob patterns', async (t) => {
  t.ok(globToRegExp('plant.*').test('plant.meter1.power'), '* crosses dots');
  t.notOk(globToRegExp('plant.*').test('plantx'), '. is literal');
  t.ok(globToRegExp('m?.kw').test('m1.kw'));
  t.notOk(globToRegExp('m?.kw').test('m12.kw'));
  t.throws(() => RetentionConfigSchema.parse({ rules: [{ pattern: 'Bad Pattern!' }] }), 'invalid pattern refused at load');
  t.throws(() => RetentionConfigSchema.parse({ rawDays: -1 }), 'negative days refused');
  t.throws(() => RetentionConfigSchema.parse({ maxBytes: 10 }), 'tiny budget refused');
  t.throws(() => RetentionConfigSchema.parse({ rawdays: 3 }), 'unknown key refused');
});

t.test('raw points expire by age per pattern; rollups are kept longer', async (t) => {
  const store = await tempStore(t);
  // One point per hour for 200 days, for three datapoints.
  const points: PointRecord[] = [];
  for (let h = 0; h < 200 * 24; h++) {
    const time = NOW - 200 * DAY + h * 3_600_000;
    points.push({ id: 'plant.keep.x', t: time, v: h }, { id: 'plant.short', t: time, v: h }, { id: 'other', t: time, v: h });
  }
  for (let i = 0; i < points.length; i += 3000) await store.write(points.slice(i, i + 3000));
  const config = RetentionConfigSchema.parse({
    rawDays: 90,
    rules: [
      { pattern: 'plant.keep.*', rawDays: null },
      { pattern: 'plant.*', rawDays: 10 },
    ],
    rollupDays: { '1m': 30 },
  });
  const retention = new Retention(store, config, () => NOW);
  t.equal(retention.rawDaysFor('plant.keep.x'), null);
  t.equal(retention.rawDaysFor('plant.short'), 10, 'first matching rule wins');
  t.equal(retention.rawDaysFor('other'), 90, 'default');
  const report = await retention.run();
  t.equal((await store.query('plant.keep.x', { limit: 100_000 })).length, 4800, 'keep-forever pattern untouched');
  t.equal((await store.query('plant.short', { limit: 100_000 })).length, 240, '10 days left');
  const other = await store.query('other', { limit: 100_000 });
  t.equal(other.length, 90 * 24, '90 days left');
  t.ok(other[0]!.t >= NOW - 90 * DAY, 'oldest kept point is within 90 days');
  t.equal(report.rawExpired, 4800 - 240 + (4800 - 2160), 'every deleted point counted');
  t.equal(report.rollupsExpired['1m'], 3 * (4800 - 30 * 24), '1 min rollups beyond 30 days expired');
  t.same([report.rollupsExpired['15m'], report.rollupsExpired['1h'], report.rollupsExpired['1d']], [0, 0, 0]);
  // History older than raw retention is still answered from the 15 min / 1 d rollups.
  const daily = await store.queryAggregate('other', { from: NOW - 200 * DAY, to: NOW - 1, interval: DAY, agg: 'count' });
  t.equal(daily.length, 200);
  t.ok(
    daily.every((d) => d.v === 24),
    'day counts intact after raw deletes',
  );
  // Writes after retention still merge correctly (cache dropped).
  await store.write([{ id: 'other', t: NOW - 150 * DAY + 1, v: 1000 }]);
  const day150 = await store.queryAggregate('other', { from: NOW - 150 * DAY, to: NOW - 149 * DAY - 1, interval: DAY, agg: 'count' });
  t.same(
    day150.map((d) => d.v),
    [25],
  );
  const again = await retention.run();
  t.equal(again.rawExpired, 1, 'second pass removes only the late old point');
  t.equal(retention.totals.runs, 2);
});

t.test('disk budget: oldest raw first, unsynced outbox kept unless configured', async (t) => {
  const ids = Array.from({ length: 20 }, (_, i) => `m${i}.power`);
  const DAYS = 6;
  const PER_DAY = 1440; // every 10 s for 4 h a day
  let x = 12345;
  const noise = (): number => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648) * 1000;
  const fill = async (store: LevelStore): Promise<number> => {
    for (let day = 0; day < DAYS; day++) {
      const batch: PointRecord[] = [];
      for (let s = 0; s < PER_DAY; s++)
        for (const id of ids) batch.push({ id, t: NOW - (DAYS - day) * DAY + s * 10_000, v: Math.round(noise() * 1000) / 1000 });
      for (let i = 0; i < batch.length; i += 5000) await store.write(batch.slice(i, i + 5000));
    }
    await store.compact('\x00', '\xff');
    return directoryBytes(store.path);
  };

  const store = await tempStore(t);
  const full = await fill(store);
  const outboxBefore = store.stats().outboxDepth;
  t.ok(full > 3 * 1024 * 1024, `test data is large enough (${full} bytes)`);
  // The outbox is about as big as the raw data: a budget below it cannot be met without
  // dropping unsynced records, so the report must say "over budget".
  const tightBudget = Math.max(1024 * 1024, Math.floor(full / 4));
  const r1 = await new Retention(store, RetentionConfigSchema.parse({ rawDays: null, maxBytes: tightBudget }), () => NOW).run();
  t.equal(r1.rawDroppedForBudget, DAYS * PER_DAY * ids.length, 'all raw dropped for budget');
  t.equal(store.stats().outboxDepth, outboxBefore, 'unsynced outbox untouched');
  t.equal((await store.readOutbox(0, 1))[0]?.seq, 1, 'oldest unsynced record still there');
  t.equal(r1.outboxDropped, 0);
  t.ok(r1.overBudget, 'reported as over budget');
  t.equal((await store.queryAggregate('m0.power', { from: NOW - DAYS * DAY, to: NOW, interval: DAY, agg: 'count' })).length, DAYS, 'daily rollups survive');

  // With dropUnsyncedOutbox the same budget is met, and the report says how much was dropped.
  const r3 = await new Retention(store, RetentionConfigSchema.parse({ rawDays: null, maxBytes: tightBudget, dropUnsyncedOutbox: true }), () => NOW).run();
  t.ok(r3.outboxDropped > 0, `outbox dropped and counted (${r3.outboxDropped})`);
  t.notOk(r3.overBudget, 'budget met');
  t.equal(store.stats().outboxDepth, outboxBefore - r3.outboxDropped);

  // Once upstream acknowledged the outbox, a moderate budget is met by dropping the oldest raw days only.
  const store2 = await tempStore(t);
  await fill(store2);
  await store2.ackOutbox(store2.stats().lastSeq);
  await store2.compact('\x00', '\xff');
  const full2 = await directoryBytes(store2.path);
  const budget = Math.floor(full2 * 0.75);
  const r2 = await new Retention(store2, RetentionConfigSchema.parse({ rawDays: null, maxBytes: budget }), () => NOW).run();
  t.notOk(r2.overBudget, `met the budget (${r2.bytesAfter} <= ${budget})`);
  t.ok(r2.rawDroppedForBudget > 0 && r2.rawDroppedForBudget < DAYS * PER_DAY * ids.length, `some raw dropped (${r2.rawDroppedForBudget})`);
  t.equal(r2.rawDroppedForBudget % (ids.length * PER_DAY), 0, 'whole oldest days dropped');
  t.equal(r2.rollupsDroppedForBudget, 0, 'rollups untouched while raw suffices');
  const oldest = await store2.query('m0.power', { limit: 1 });
  t.equal(oldest[0]!.t, NOW - DAYS * DAY + (r2.rawDroppedForBudget / (ids.length * PER_DAY)) * DAY, 'oldest remaining point starts the first kept day');
  const newest = await store2.query('m0.power', { order: 'desc', limit: 1 });
  t.equal(newest[0]!.t, NOW - DAY + (PER_DAY - 1) * 10_000, 'newest kept');
});

t.test('the running gateway counts what its disk budget dropped, by kind, in /metrics', async (t) => {
  const ids = Array.from({ length: 10 }, (_, i) => `budget.m${i}`);
  const gw = await startTestGateway(t, {
    datapoints: ids.map((id) => ({ id, kind: 'sensor', type: 'number' })),
    storage: { sync: false, retention: { rawDays: null, maxBytes: 1024 * 1024, dropUnsyncedOutbox: true } },
  });
  let x = 777;
  const noise = (): number => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648) * 1000;
  const now = Date.now();
  for (let day = 0; day < 4; day++) {
    const batch = [];
    for (let s = 0; s < 1440; s++) for (const id of ids) batch.push({ id, v: Math.round(noise() * 1000) / 1000, t: now - (4 - day) * DAY + s * 10_000 });
    for (let i = 0; i < batch.length; i += 5000) await gw.gateway.ingest.acceptMany('test', batch.slice(i, i + 5000));
  }
  await (gw.gateway.store as LevelStore).compact('\x00', '\xff');
  const report = await gw.gateway.retention!.run();
  t.ok(report.rawDroppedForBudget > 0, `raw points dropped for the budget (${report.rawDroppedForBudget})`);
  const metrics = await (await fetch(`${gw.httpUrl}/metrics`)).text();
  const counted = (kind: string): number => Number(new RegExp(`^outpost_storage_dropped_total\\{kind="${kind}"\\} (\\d+)`, 'm').exec(metrics)?.[1] ?? NaN);
  t.equal(counted('raw'), report.rawDroppedForBudget, 'raw drops counted in /metrics');
  t.equal(counted('outbox'), report.outboxDropped, 'unsynced outbox drops counted in /metrics');
});
