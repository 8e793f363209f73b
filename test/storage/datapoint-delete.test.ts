import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelStore } from '../../storage/level/level-store.js';
import { MemoryStore } from '../../storage/memory-store.js';
import { ERASE_SLICE } from '../../storage/level/datapoint-erase.js';
import { HIGH } from '../../storage/level/keys.js';
import type { PointRecord, Store } from '../../storage/store.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2016, 0, 1);

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-dpdelete-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Every key of the database whose name holds the datapoint `id` (as `!<id>!` or `m!<id>`). */
async function keysOf(store: LevelStore, id: string): Promise<string[]> {
  const out: string[] = [];
  for (const key of await store.testHooks.keys({ gte: '', lt: HIGH })) {
    if (key === `m!${id}` || key.includes(`!${id}!`)) out.push(key);
  }
  return out;
}

/**
 * `a` gets one reading a day for `days` days (a raw chunk and rollup chunks per day: more
 * keys than a deletion slice), plus its live tail; `a.b` and `ab` share its prefix and must
 * survive.
 */
async function fill(store: Store, days: number): Promise<number> {
  const points: PointRecord[] = [];
  for (let d = 0; d < days; d++) points.push({ id: 'a', t: T0 + d * DAY, v: d });
  for (let i = 0; i < 50; i++) points.push({ id: 'a', t: T0 + days * DAY + i * 1000, v: i });
  for (let i = 0; i < 20; i++) points.push({ id: 'a.b', t: T0 + i * DAY, v: i }, { id: 'ab', t: T0 + i * DAY, v: -i });
  for (let i = 0; i < points.length; i += 1000) await store.write(points.slice(i, i + 1000));
  await store.putDatapoints([
    { id: 'a', adapter: 'junk', kind: 'sensor', type: 'number' },
    { id: 'a.b', adapter: 'junk', kind: 'sensor', type: 'number' },
    { id: 'ab', adapter: 'junk', kind: 'sensor', type: 'number' },
  ]);
  return days + 50;
}

t.test('LevelStore: a datapoint is deleted with its definition, raw chunks, rollups, latest value and current buckets; its outbox records stay', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'db');
  let store = new LevelStore({ path, sync: false });
  await store.open();
  const days = Math.ceil(ERASE_SLICE * 1.5);
  const written = await fill(store, days);
  const before = await keysOf(store, 'a');
  t.ok(before.length > 2 * ERASE_SLICE, `more keys than two slices (${before.length})`);
  t.same(
    await store.storedPoints('a'),
    { points: written, rollups: (await store.storedPoints('a')).rollups, oldest: T0, newest: T0 + days * DAY + 49_000 },
    'counted before',
  );
  t.ok((await store.storedPoints('a')).rollups > 4 * days, 'rollup buckets counted');
  const outboxBefore = store.stats().outboxDepth;

  const deleted = await store.deleteDatapoint('a');
  t.equal(deleted.points, written, 'every raw reading counted');
  t.ok(deleted.rollups > 4 * days, `rollup buckets counted (${deleted.rollups})`);
  t.equal(deleted.definition, true);
  t.same(await keysOf(store, 'a'), [], 'no key of the datapoint is left');
  t.same(await store.query('a', { from: 0, to: Date.now() }), [], 'no readings');
  t.same(await store.queryAggregate('a', { from: T0, to: T0 + (days + 1) * DAY, interval: DAY, agg: 'count' }), [], 'no rollups');
  t.equal(store.latest('a'), undefined, 'no latest value');
  t.same((await store.listDatapoints()).map((d) => d.id).sort(), ['a.b', 'ab'], 'definition gone, the others kept');
  t.equal((await store.query('a.b', { from: 0, to: Date.now() })).length, 20, 'a.b (same prefix) untouched');
  t.equal((await store.query('ab', { from: 0, to: Date.now() })).length, 20, 'ab untouched');
  t.equal(store.stats().outboxDepth, outboxBefore, 'outbox records kept');
  t.ok(
    (await store.readOutbox(0, 100_000)).some((r) => r.id === 'a'),
    'the datapoint’s queued records are still there',
  );
  t.same(await store.storedPoints('a'), { points: 0, rollups: 0 });

  // A reading after the deletion starts a fresh series: its rollups count it alone.
  const late = T0 + 100 * DAY + 5000;
  await store.write([{ id: 'a', t: late, v: 7 }]);
  t.same(await store.query('a', { from: 0, to: Date.now() }), [{ t: late, v: 7 }]);
  t.same(store.latest('a'), { t: late, v: 7 }, 'latest is the new reading, though older than the deleted newest');
  t.same(
    (await store.queryAggregate('a', { from: late - DAY, to: late + DAY, interval: 60_000, agg: 'count' })).map((p) => p.v),
    [1],
    '1 min bucket: one reading',
  );
  t.same(
    (await store.queryAggregate('a', { from: T0, to: late + DAY, interval: DAY, agg: 'count' })).map((p) => p.v),
    [1],
    'day bucket: one reading, nothing of the deleted series',
  );

  // Reopened: still gone (the deletes were made durable), the new reading kept.
  await store.close();
  store = new LevelStore({ path, sync: false });
  await store.open();
  t.teardown(() => store.close());
  t.same(await store.query('a', { from: 0, to: Date.now() }), [{ t: late, v: 7 }], 'after reopen: only the reading written after the deletion');
  t.same(store.latest('a'), { t: late, v: 7 });
  t.same(
    (await store.queryAggregate('a', { from: T0, to: late + DAY, interval: DAY, agg: 'count' })).map((p) => p.v),
    [1],
  );
  t.notOk(
    (await store.listDatapoints()).some((d) => d.id === 'a'),
    'no definition after reopen',
  );
});

t.test('LevelStore: readings written while a deletion runs are deleted too, and ingest goes on meanwhile', async (t) => {
  const dir = await tempDir(t);
  const store = new LevelStore({ path: join(dir, 'db'), sync: false });
  await store.open();
  t.teardown(() => store.close());
  await fill(store, 3 * ERASE_SLICE);
  let other = 0;
  const deleting = store.deleteDatapoint('a');
  // Another datapoint's live writes and a late write to the one being deleted, while it runs.
  const writes: Promise<void>[] = [];
  for (let i = 0; i < 20; i++) writes.push(store.write([{ id: 'live', t: T0 + i, v: i }]).then(() => void other++));
  writes.push(store.write([{ id: 'a', t: T0 + 5, v: 1 }]));
  await Promise.all(writes);
  await deleting;
  t.equal(other, 20, 'other writes went through');
  t.same(await keysOf(store, 'a'), [], 'nothing of the deleted datapoint is left');
  t.equal(store.latest('a'), undefined);
  t.equal((await store.query('live', { from: 0, to: Date.now() })).length, 20);
});

t.test('MemoryStore: same contract', async (t) => {
  const store = new MemoryStore();
  await store.open();
  const written = await fill(store, 30);
  t.same(await store.storedPoints('a'), { points: written, rollups: 0, oldest: T0, newest: T0 + 30 * DAY + 49_000 });
  const outbox = store.stats().outboxDepth;
  t.same(await store.deleteDatapoint('a'), { points: written, rollups: 0, definition: true });
  t.same(await store.query('a'), []);
  t.equal(store.latest('a'), undefined);
  t.same((await store.listDatapoints()).map((d) => d.id).sort(), ['a.b', 'ab']);
  t.equal(store.stats().outboxDepth, outbox, 'outbox kept');
  t.equal((await store.query('a.b', { from: 0, to: Date.now() })).length, 20);
});
