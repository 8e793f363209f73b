/**
 * Current rollup buckets (storage/level/current-buckets.ts): live commits do not rewrite the newest
 * bucket of each resolution; it is kept exact in memory, laid over what is read from disk,
 * written exact when it closes, before retention takes its raw points, and recomputed from
 * the raw points when the store opens, also after a crash.
 */
import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { LevelStore } from '../../storage/level/level-store.js';
import { rollupKey } from '../../storage/level/keys.js';
import { decodeAgg } from '../../storage/rollups.js';
import { rollupCodec } from '../../storage/level/chunks.js';
import { MAX_QUERY_LIMIT, type StoredValue } from '../../storage/store.js';
import { REPO_ROOT } from '../helpers/process.js';
import { aggregateMismatch } from './rollup-model.js';

const T0 = Date.UTC(2026, 0, 5, 10);
const DAY = 86_400_000;
const aggCodec = rollupCodec(decodeAgg);

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-current-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function opened(t: Test, path: string): Promise<LevelStore> {
  const store = new LevelStore({ path, sync: false });
  await store.open();
  t.teardown(() => store.close());
  return store;
}

/** The count of the 1 min bucket at `bucket` as stored on disk (no overlay), or undefined. */
async function countOnDisk(store: LevelStore, id: string, bucket: number): Promise<number | undefined> {
  const key = rollupKey('1m', id, bucket);
  const value = await store.testHooks.get(key);
  if (value === undefined) return undefined;
  const d = aggCodec.decode(bucket, value);
  const i = d.ts.indexOf(bucket);
  return i < 0 ? undefined : d.es[i]!.count;
}

/** Live readings of `id`, one per commit, `step` ms apart, from `from`; returns them. */
async function live(store: LevelStore, id: string, from: number, n: number, step: number): Promise<StoredValue[]> {
  const out: StoredValue[] = [];
  for (let i = 0; i < n; i++) {
    const p = { t: from + i * step, v: (i * 7) % 23 };
    await store.write([{ id, ...p }]);
    out.push(p);
  }
  return out;
}

t.test('live commits leave the current bucket unwritten on disk; queries and a reopened store see it exact', async (t) => {
  const path = join(await tempDir(t), 'db');
  let store = await opened(t, path);
  const readings = await live(store, 'cur.a', T0, 20, 2_000); // 40 s: one minute bucket
  t.equal(await countOnDisk(store, 'cur.a', T0), 1, 'on disk the bucket still holds its first reading');
  t.equal(await aggregateMismatch(store, 'cur.a', readings, T0 - DAY, T0 + DAY), undefined, 'every rollup query is exact');
  await store.close();
  store = await opened(t, path);
  t.equal(await aggregateMismatch(store, 'cur.a', readings, T0 - DAY, T0 + DAY), undefined, 'after a reopen, recomputed from the raw points');
  readings.push(...(await live(store, 'cur.a', T0 + 40_000, 30, 2_000))); // into the next minute
  t.equal(await countOnDisk(store, 'cur.a', T0), 30, 'the first minute, closed, is on disk exact');
  t.equal(await aggregateMismatch(store, 'cur.a', readings, T0 - DAY, T0 + DAY), undefined, 'and every rollup stays exact');
});

t.test('a bucket transition with the caches dropped: the general path closes the stale bucket exact', async (t) => {
  const path = join(await tempDir(t), 'db');
  const store = await opened(t, path);
  const readings = await live(store, 'cur.b', T0, 10, 3_000);
  store.dropRollupCache(); // as a failed commit or the cache bound does
  // The next reading skips a bucket at every resolution: the current ones close without a reading.
  const jump = { t: T0 + 2 * DAY + 5_000, v: 42 };
  await store.write([{ id: 'cur.b', ...jump }]);
  readings.push(jump);
  t.equal(await countOnDisk(store, 'cur.b', T0), 10, 'the closed minute on disk holds all ten readings');
  t.equal(await aggregateMismatch(store, 'cur.b', readings, T0 - DAY, T0 + 3 * DAY), undefined, 'every rollup is exact');
  const again = await live(store, 'cur.b', T0 + 2 * DAY + 6_000, 5, 1_000);
  t.equal(await aggregateMismatch(store, 'cur.b', [...readings, ...again], T0 - DAY, T0 + 3 * DAY), undefined, 'also as live commits go on');
});

t.test('late values and overwrites into a current bucket whose disk state is older', async (t) => {
  const path = join(await tempDir(t), 'db');
  const store = await opened(t, path);
  const readings = new Map<number, StoredValue>();
  for (const p of await live(store, 'cur.c', T0, 12, 4_000)) readings.set(p.t, p);
  // A late reading inside the current minute, and an overwrite of one in it.
  for (const p of [
    { t: T0 + 1_000, v: 99 },
    { t: T0 + 8_000, v: -5 },
  ]) {
    await store.write([{ id: 'cur.c', ...p }]);
    readings.set(p.t, p);
  }
  const all = [...readings.values()];
  t.equal(await aggregateMismatch(store, 'cur.c', all, T0 - DAY, T0 + DAY), undefined, 'exact after the late values');
  const more = await live(store, 'cur.c', T0 + 48_000, 10, 4_000);
  t.equal(await aggregateMismatch(store, 'cur.c', [...all, ...more], T0 - DAY, T0 + DAY), undefined, 'and after live commits close the bucket');
});

t.test('retention taking the raw points of a current bucket writes it exact first', async (t) => {
  const path = join(await tempDir(t), 'db');
  let store = await opened(t, path);
  const readings = await live(store, 'cur.d', T0, 25, 2_000); // the datapoint then goes quiet
  t.equal(await countOnDisk(store, 'cur.d', T0), 1, 'stale on disk before retention');
  await store.deleteBefore('cur.d', T0 + DAY);
  t.same(await store.query('cur.d', { limit: MAX_QUERY_LIMIT }), [], 'the raw points are gone');
  t.equal(await countOnDisk(store, 'cur.d', T0), 25, 'the bucket was written exact');
  await store.close();
  store = await opened(t, path);
  t.equal(await aggregateMismatch(store, 'cur.d', readings, T0 - DAY, T0 + DAY), undefined, 'every rollup exact after a reopen, without the raw points');
});

t.test('a reading that is not a number moves past a current bucket whose disk state is older', async (t) => {
  const bad = { t: T0 + 65_000, v: null, q: 'bad' as const }; // the next minute, as a device with a sensor fault sends it
  const setup = async (path: string): Promise<{ store: LevelStore; readings: StoredValue[] }> => {
    const store = await opened(t, path);
    const readings = await live(store, 'cur.e', T0, 10, 5_000);
    await store.write([{ id: 'cur.e', ...bad }]);
    readings.push(bad);
    return { store, readings };
  };
  {
    const path = join(await tempDir(t), 'db');
    const { store, readings } = await setup(path);
    t.equal(await countOnDisk(store, 'cur.e', T0), 10, 'the minute it closed is on disk exact');
    await store.close();
    const reopened = await opened(t, path);
    t.equal(await aggregateMismatch(reopened, 'cur.e', readings, T0 - DAY, T0 + DAY), undefined, 'exact after a reopen');
  }
  {
    const { store, readings } = await setup(join(await tempDir(t), 'db'));
    store.dropRollupCache();
    const next = { t: T0 + 70_000, v: 5 };
    await store.write([{ id: 'cur.e', ...next }]);
    t.equal(
      await aggregateMismatch(store, 'cur.e', [...readings, next], T0 - DAY, T0 + DAY),
      undefined,
      'exact after the caches were dropped and a number came',
    );
  }
  {
    const { store, readings } = await setup(join(await tempDir(t), 'db'));
    const late = { t: T0 + 2_500, v: 50 };
    await store.write([{ id: 'cur.e', ...late }]);
    t.equal(await aggregateMismatch(store, 'cur.e', [...readings, late], T0 - DAY, T0 + DAY), undefined, 'exact after a late value into the closed minute');
  }
  {
    const path = join(await tempDir(t), 'db');
    let store = await opened(t, path);
    const readings = await live(store, 'cur.f', T0, 10, 5_000);
    store.dropRollupCache();
    const batch = [
      { t: T0 + 52_000, v: 3 },
      { t: T0 + 65_000, v: null, q: 'bad' as const },
    ];
    await store.write(batch.map((p) => ({ id: 'cur.f', ...p })));
    readings.push(...batch);
    t.equal(
      await aggregateMismatch(store, 'cur.f', readings, T0 - DAY, T0 + DAY),
      undefined,
      'one batch: a number in the stale minute, then a gap reading in the next',
    );
    await store.close();
    store = await opened(t, path);
    t.equal(await aggregateMismatch(store, 'cur.f', readings, T0 - DAY, T0 + DAY), undefined, 'and after a reopen');
  }
});

/** Starts the live writer on `path`; resolves with its durable commit count once killed after `commits`. */
async function writeThenKill(path: string, datapoints: number, first: number, commits: number): Promise<number> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(REPO_ROOT, 'test', 'storage', 'fixtures', 'live-writer.ts'), path, String(datapoints), String(first)],
    { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let committed = -1;
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      const m = /committed (\d+)\n$/.exec(d.toString());
      if (m) committed = Number(m[1]);
      if (committed >= commits) resolve();
    });
    void exited.then(() => reject(new Error(`the writer exited: ${err}`)));
  });
  child.kill('SIGKILL');
  await exited;
  return committed;
}

t.test('killed with SIGKILL during live writes, again and again: every rollup equals the readings stored', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'db');
  const datapoints = 12;
  let first = T0;
  let durable = 0;
  for (let round = 0; round < 4; round++) {
    // 7 s apart: 60-180 commits close minutes, quarter hours and, over the rounds, an hour.
    durable += (await writeThenKill(path, datapoints, first, 60 + round * 40)) + 1;
    const store = new LevelStore({ path });
    await store.open();
    let newest = first;
    for (let k = 0; k < datapoints; k++) {
      const id = `crash.d${k}`;
      const stored = await store.query(id, { limit: MAX_QUERY_LIMIT });
      t.ok(stored.length >= durable, `round ${round}: ${id} holds ${stored.length} readings (${durable} commits reported durable)`);
      const mismatch = await aggregateMismatch(store, id, stored, T0 - DAY, T0 + DAY);
      t.equal(mismatch, undefined, `round ${round}: ${id} rollups equal its stored readings`);
      newest = Math.max(newest, stored[stored.length - 1]!.t);
    }
    await store.close();
    first = newest + 7_000;
  }
});
