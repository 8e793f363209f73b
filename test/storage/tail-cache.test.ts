/**
 * The newest-chunk caches of storage/level are bounded (LevelStoreOptions.tailCacheDatapoints,
 * default TAIL_CACHE_DATAPOINTS) and start over beyond it; a central with a larger fleet raises
 * the bound (`level.cacheDatapoints`). Here a store whose caches start over every few commits
 * stores and aggregates exactly what one that keeps every datapoint does, before and after a
 * reopen: the path a gateway takes above 20,000 datapoints, at a size a test can write.
 */
import t from 'tap';
import { join } from 'node:path';
import { Caches, TAIL_CACHE_DATAPOINTS } from '../../storage/level/caches.js';
import { LevelStore } from '../../storage/level/level-store.js';
import type { PointRecord, Store } from '../../storage/store.js';
import { tempDir } from '../helpers/teardown.js';

t.test('the caches keep at most the datapoints they are given, then start over', async (t) => {
  const tail = (id: string) => ({ id, chunks: [{ key: `${id}/0`, ts: [1], es: [{ t: 1, v: 1 }] }] });
  const small = new Caches(2);
  for (const id of ['a', 'b', 'c']) small.keepTails([tail(id)]);
  t.same([...small.rawTail.keys()], ['a', 'b', 'c'], 'a commit may pass the bound by its own datapoints');
  small.keepTails([tail('d')]);
  t.same([...small.rawTail.keys()], ['d'], 'the next one starts over');
  const usual = new Caches();
  for (const id of ['a', 'b', 'c', 'd']) usual.keepTails([tail(id)]);
  t.equal(usual.rawTail.size, 4);
  t.equal(TAIL_CACHE_DATAPOINTS, 20_000, 'sized for a 1 GB gateway');
});

t.test('a store whose caches start over stores and aggregates exactly as one that keeps them', async (t) => {
  const dir = await tempDir(t, 'outpost-tail-cache-');
  const open = async (name: string, tailCacheDatapoints?: number): Promise<LevelStore> => {
    const store = new LevelStore({ path: join(dir, name), sync: false, ...(tailCacheDatapoints ? { tailCacheDatapoints } : {}) });
    await store.open();
    return store;
  };
  const small = await open('small', 3);
  const usual = await open('usual');
  const ids = Array.from({ length: 12 }, (_, i) => `meter${i}.power`);
  const t0 = Date.UTC(2026, 11, 1);
  // 12 datapoints every 15 s for 75 min, four of them per commit in turn: the small store's
  // caches start over every commit, so most appends read their chunk and buckets back.
  for (let round = 0; round < 300; round++) {
    for (let part = 0; part < 3; part++) {
      const points: PointRecord[] = ids.slice(part * 4, part * 4 + 4).map((id, i) => ({ id, t: t0 + round * 15_000, v: ((round * 7 + i * 13) % 50) - 10 }));
      await small.write(points);
      await usual.write(points);
    }
  }
  // A late reading inside an earlier hour (an import), written to both.
  const late: PointRecord = { id: ids[5]!, t: t0 + 20 * 60_000 + 7_000, v: 1000 };
  await small.write([late]);
  await usual.write([late]);
  const compare = async (what: string, a: Store, b: Store) => {
    for (const id of ids) {
      const raw = await a.query(id);
      t.equal(raw.length, id === late.id ? 301 : 300, `${what}: ${id} every reading`);
      t.same(raw, await b.query(id), `${what}: ${id} the same readings`);
      for (const interval of [60_000, 900_000, 3_600_000]) {
        const q = { from: t0, to: t0 + 300 * 15_000, interval, agg: 'avg' as const };
        t.same(await a.queryAggregate(id, q), await b.queryAggregate(id, q), `${what}: ${id} the same ${interval / 60_000} min averages`);
      }
      const delta = { from: t0, to: t0 + 300 * 15_000, interval: 900_000, agg: 'delta' as const };
      t.same(await a.queryAggregate(id, delta), await b.queryAggregate(id, delta), `${what}: ${id} the same deltas`);
      t.same(a.latest(id), b.latest(id), `${what}: ${id} the same newest reading`);
    }
  };
  await compare('open', small, usual);
  await small.close();
  const reopened = await open('small', 3);
  await compare('reopened', reopened, usual);
  await reopened.close();
  await usual.close();
});
