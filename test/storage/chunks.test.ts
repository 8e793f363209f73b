/**
 * The chunked layout of raw points and rollup buckets (storage/level/chunks.ts): the codecs, how
 * entries are cut into chunks, and LevelStore against a plain model under live appends,
 * bulk writes, late values, overwrites, restarts (cold caches), values written one per key
 * by earlier versions, and retention cutting inside a chunk.
 */
import { failCommits } from '../helpers/storage-faults.js';
import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHUNK_MAX, LIVE_MAX, RAW_BLOCK_MS, ROLLUP_LIVE_MAX, cut, mergeEntries, rawCodec, rollupBlockMs, rollupCodec } from '../../storage/level/chunks.js';
import { LevelStore } from '../../storage/level/level-store.js';
import { pointKey, rollupKey } from '../../storage/level/keys.js';
import { RESOLUTIONS, decodeAgg, encodeAgg, singleAgg, type Agg } from '../../storage/rollups.js';
import { MAX_QUERY_LIMIT, type PointRecord, type StoredValue } from '../../storage/store.js';
import { mulberry32 } from '../helpers/rng.js';
import { aggregateMismatch } from './rollup-model.js';

const T0 = Date.UTC(2026, 0, 5);
const MIN = 60_000;
const DAY = 86_400_000;

async function tempStore(t: Test): Promise<{ open(): Promise<LevelStore>; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-chunks-'));
  let current: LevelStore | undefined;
  t.teardown(async () => {
    await current?.close();
    await rm(dir, { recursive: true, force: true });
  });
  return {
    dir,
    async open() {
      await current?.close();
      current = new LevelStore({ path: join(dir, 'db'), sync: false });
      await current.open();
      return current;
    },
  };
}

async function keysUnder(store: LevelStore, prefix: string): Promise<string[]> {
  return store.testHooks.keys({ gte: prefix, lt: prefix + '\xff' });
}

const aggCodec = rollupCodec(decodeAgg);

/** The layout invariants of every chunked series of `id`: key = first entry, entries ascending, no overlap, no block crossed, at most CHUNK_MAX. Returns the first violation. */
async function layoutViolation(store: LevelStore, id: string): Promise<string | undefined> {
  const series: Array<{ prefix: string; blockMs: number; codec: typeof rawCodec | typeof aggCodec }> = [
    { prefix: `p!${id}!`, blockMs: RAW_BLOCK_MS, codec: rawCodec },
    ...RESOLUTIONS.map((r) => ({ prefix: `r!${r.name}!${id}!`, blockMs: rollupBlockMs(r.ms), codec: aggCodec })),
  ];
  for (const { prefix, blockMs, codec } of series) {
    let previousLast = -Infinity;
    for (const [key, value] of await store.testHooks.entries({ gte: prefix, lt: prefix + '\xff' })) {
      const keyT = Number(key.slice(prefix.length));
      const { ts } = codec.decode(keyT, value);
      if (ts[0] !== keyT) return `${key}: first entry ${ts[0]} is not the key's time`;
      if (ts.some((x, i) => i > 0 && x <= ts[i - 1]!)) return `${key}: entries out of order`;
      if (ts[0]! <= previousLast) return `${key}: overlaps the chunk before (which ends at ${previousLast})`;
      if (Math.floor(ts[0]! / blockMs) !== Math.floor(ts[ts.length - 1]! / blockMs)) return `${key}: crosses a block boundary`;
      if (ts.length > CHUNK_MAX) return `${key}: ${ts.length} entries`;
      previousLast = ts[ts.length - 1]!;
    }
  }
  return undefined;
}

t.test('raw codec: numbers as doubles, everything else (and quality) exactly as written', async (t) => {
  const es: StoredValue[] = [
    { t: 1, v: 1.5 },
    { t: 2, v: -0.25 },
    { t: 3, v: 'text with ü and "quotes"' },
    { t: 4, v: true },
    { t: 5, v: null, q: 'bad' },
    { t: 6, v: 42, q: 'stale' },
    { t: 7, v: { nested: [1, 2] } },
    { t: 8, v: 1e300 },
    { t: 9, v: 0 },
  ];
  const raw = rawCodec.encode(
    es.map((e) => e.t),
    es,
  );
  t.equal(rawCodec.count(raw), es.length, 'count from the header');
  t.same(rawCodec.decode(1, raw).es, es, 'round trip');
  t.same(
    rawCodec.decode(1, raw).ts,
    es.map((e) => e.t),
  );
  t.equal(raw[0], 6, 'bytes (marker 6)');
  t.equal(
    raw.length,
    8 +
      16 * es.length +
      Buffer.byteLength(
        JSON.stringify([
          [2, es[2]!.v],
          [3, true],
          [4, null, 'bad'],
          [5, 42, 'stale'],
          [6, es[6]!.v],
        ]),
      ),
    'header, doubles, then the other entries as UTF-8 JSON',
  );
  // The layout before, as text (marker 2, latin1 characters, the JSON as it is), read as text and as its UTF-8 bytes from disk.
  const head = Buffer.from(raw.subarray(0, 8 + 16 * es.length));
  head[0] = 2;
  const text = head.toString('latin1') + raw.toString('utf8', 8 + 16 * es.length);
  t.same(rawCodec.decode(1, text).es, es, 'text layout (marker 2)');
  t.same(rawCodec.decode(1, Buffer.from(text, 'utf8')).es, es, 'text layout read from disk as bytes');
  t.equal(rawCodec.count(Buffer.from(text, 'utf8')), es.length);
  // Values of one reading per key, as earlier versions wrote them.
  t.same(rawCodec.decode(77, '[12.5]'), { ts: [77], es: [{ t: 77, v: 12.5 }] });
  t.same(rawCodec.decode(77, Buffer.from('[12.5]')), { ts: [77], es: [{ t: 77, v: 12.5 }] }, 'read from disk as bytes');
  t.same(rawCodec.decode(77, '["on","stale"]'), { ts: [77], es: [{ t: 77, v: 'on', q: 'stale' }] });
  t.equal(rawCodec.count('[1]'), 1);
});

t.test('rollup codec: one-reading buckets in three doubles, others in ten; earlier layouts still read', async (t) => {
  const codec = aggCodec;
  const aggs: Agg[] = [singleAgg(T0, 3), { count: 4, sum: 10.5, min: -1, max: 7, ft: T0 + MIN, fv: 2, lt: T0 + 2 * MIN, lv: 7, inc: 5 }];
  const raw = codec.encode([T0, T0 + MIN], aggs);
  t.same(codec.decode(T0, raw), { ts: [T0, T0 + MIN], es: aggs });
  t.equal(codec.count(raw), 2);
  t.equal(raw.length, 8 + 8 + 8 * (3 + 10), 'header, kinds padded to 8, three doubles and ten');
  t.equal(raw[0], 7, 'bytes (marker 7)');
  // The same layout as text (marker 5), as the version before wrote it: as text and as its UTF-8 bytes from disk.
  const compactText = Buffer.from(raw);
  compactText[0] = 5;
  t.same(codec.decode(T0, compactText.toString('latin1')), { ts: [T0, T0 + MIN], es: aggs }, 'text layout (marker 5)');
  t.same(codec.decode(T0, Buffer.from(compactText.toString('latin1'), 'utf8')), { ts: [T0, T0 + MIN], es: aggs }, 'text layout read from disk as bytes');
  t.equal(codec.count(Buffer.from(compactText.toString('latin1'), 'utf8')), 2);
  // Mixed runs of every length around the kind padding, including two readings of one value (not one reading).
  const random = mulberry32(11);
  for (const n of [1, 7, 8, 9, 17, 64]) {
    const ts = Array.from({ length: n }, (_, i) => T0 + i * MIN);
    const es: Agg[] = ts.map((b, i) => {
      const v = Math.round(random() * 1e4) / 100 - 50;
      if (random() < 0.5) return singleAgg(b + 7_000, v);
      if (i % 5 === 0) return { count: 2, sum: 2 * v, min: v, max: v, ft: b, fv: v, lt: b + 1000, lv: v, inc: 0 };
      return { count: 3, sum: 3 * v + 1, min: v - 1, max: v + 2, ft: b, fv: v, lt: b + 2000, lv: v + 2, inc: 3 };
    });
    const encoded = codec.encode(ts, es);
    t.same(codec.decode(ts[0]!, encoded), { ts, es }, `${n} buckets round trip`);
    t.equal(codec.count(encoded), n);
  }
  // The layout before: marker 3, ten doubles per bucket.
  const before = Buffer.alloc(8 + 80 * 2);
  before[0] = 3;
  before.writeUInt32LE(2, 4);
  [T0, 1, 3, 3, 3, T0, 3, T0, 3, 0, T0 + MIN, 4, 10.5, -1, 7, T0 + MIN, 2, T0 + 2 * MIN, 7, 5].forEach((d, i) => {
    before.writeDoubleLE(d, 8 + 8 * i);
  });
  t.same(codec.decode(T0, before.toString('latin1')), { ts: [T0, T0 + MIN], es: aggs }, 'ten doubles per bucket (marker 3)');
  t.equal(codec.count(before.toString('latin1')), 2);
  t.same(codec.decode(T0, encodeAgg(aggs[1]!)), { ts: [T0], es: [aggs[1]] }, 'binary single bucket');
  t.same(codec.decode(T0, JSON.stringify([1, 3, 3, 3, T0, 3, T0, 3, 0])), { ts: [T0], es: [singleAgg(T0, 3)] }, 'JSON single bucket');
});

t.test('cut: at block boundaries and CHUNK_MAX; the newest entry alone when the newest chunk is long (tail) or always (head)', async (t) => {
  const ts = Array.from({ length: 1300 }, (_, i) => T0 + i * 1000);
  const es = ts.map((x) => x);
  const pieces = cut(ts, es, RAW_BLOCK_MS, 'none');
  t.same(
    pieces.map((p) => p.ts.length),
    [CHUNK_MAX, CHUNK_MAX, 1300 - 2 * CHUNK_MAX],
  );
  const tail = cut(ts, es, RAW_BLOCK_MS, 'tail');
  t.same(
    tail.map((p) => p.ts.length),
    [CHUNK_MAX, CHUNK_MAX, 1300 - 2 * CHUNK_MAX - 1, 1],
    'newest entry alone',
  );
  t.same(
    cut(ts.slice(0, LIVE_MAX), es.slice(0, LIVE_MAX), RAW_BLOCK_MS, 'tail').map((p) => p.ts.length),
    [LIVE_MAX],
    'a short newest chunk stays whole',
  );
  t.same(
    cut(ts.slice(0, 3), es.slice(0, 3), RAW_BLOCK_MS, 'head').map((p) => p.ts.length),
    [2, 1],
    'head: the newest entry always alone',
  );
  t.same(
    cut(ts.slice(0, 1), es.slice(0, 1), RAW_BLOCK_MS, 'head').map((p) => p.ts.length),
    [1],
  );
  const across = [T0 + DAY - 2000, T0 + DAY - 1000, T0 + DAY, T0 + DAY + 1000];
  t.same(
    cut(across, across, RAW_BLOCK_MS, 'none').map((p) => p.ts),
    [across.slice(0, 2), across.slice(2)],
    'never across a day',
  );
  t.same(
    mergeEntries([{ key: 'k', ts: [1, 3, 5], es: ['a', 'c', 'e'] }], [0, 3, 5, 9], ['z', 'C', null, 'i']),
    { ts: [0, 1, 3, 9], es: ['z', 'a', 'C', 'i'] },
    'changes replace, null removes',
  );
});

t.test('live appends share chunks of LIVE_MAX readings; bulk writes chunks of up to CHUNK_MAX', async (t) => {
  const h = await tempStore(t);
  const store = await h.open();
  for (let i = 0; i < 48; i++) await store.write([{ id: 'live', t: T0 + i * 1000, v: i }]);
  const liveKeys = await keysUnder(store, 'p!live!');
  t.equal(liveKeys.length, 48 / LIVE_MAX, `48 readings written one per commit sit in ${liveKeys.length} keys`);
  t.same(
    (await store.query('live')).map((p) => p.v),
    Array.from({ length: 48 }, (_, i) => i),
  );
  // Live rollups: 48 s of data is one 1 min bucket, updated by every commit, in one key.
  t.equal((await keysUnder(store, 'r!1m!live!')).length, 1, 'one 1 min bucket, one key');
  for (let i = 0; i < 100; i++) await store.write([{ id: 'live2', t: T0 + i * MIN, v: i }]);
  const minuteKeys = await keysUnder(store, 'r!1m!live2!');
  t.equal(minuteKeys.length, Math.ceil(99 / ROLLUP_LIVE_MAX) + 1, `100 one-minute buckets written live sit in ${minuteKeys.length} keys (the newest alone)`);
  t.same(
    (await store.queryAggregate('live2', { from: T0, to: T0 + 100 * MIN, interval: MIN, agg: 'last' })).map((p) => p.v),
    Array.from({ length: 100 }, (_, i) => i),
  );
  const bulk: PointRecord[] = Array.from({ length: 86_400 }, (_, i) => ({ id: 'bulk', t: T0 + i * 1000, v: i % 997 }));
  for (let i = 0; i < bulk.length; i += 5000) await store.write(bulk.slice(i, i + 5000));
  const bulkKeys = await keysUnder(store, 'p!bulk!');
  t.ok(bulkKeys.length <= Math.ceil(86_400 / CHUNK_MAX) + 2 * 18, `a day of 1 s data in ${bulkKeys.length} keys`);
  const day = await store.query('bulk', { from: T0, to: T0 + DAY - 1, limit: MAX_QUERY_LIMIT });
  t.equal(day.length, 86_400);
  t.ok(
    day.every((p, i) => p.t === T0 + i * 1000 && p.v === i % 997),
    'every reading in order',
  );
  const rollupKeys = await keysUnder(store, 'r!1m!bulk!');
  t.ok(rollupKeys.length < 20, `1,440 one-minute buckets in ${rollupKeys.length} keys`);
  const minutes = await store.queryAggregate('bulk', { from: T0, to: T0 + DAY - 1, interval: MIN, agg: 'count' });
  t.equal(minutes.length, 1440);
  t.ok(
    minutes.every((m) => m.v === 60),
    'each minute counts 60 readings',
  );
  // A range starting and ending inside chunks.
  const mid = await store.query('bulk', { from: T0 + 1000 * 1000 + 1, to: T0 + 1003 * 1000 });
  t.same(
    mid.map((p) => p.t),
    [T0 + 1001 * 1000, T0 + 1002 * 1000, T0 + 1003 * 1000],
  );
  const newest = await store.query('bulk', { order: 'desc', limit: 3 });
  t.same(
    newest.map((p) => p.v),
    [86_399 % 997, 86_398 % 997, 86_397 % 997],
  );
  const desc = await store.query('bulk', { order: 'desc', from: T0 + 1000 * 1000 + 1, to: T0 + 1003 * 1000 });
  t.same(
    desc.map((p) => p.t),
    [T0 + 1003 * 1000, T0 + 1002 * 1000, T0 + 1001 * 1000],
    'descending inside chunks',
  );
});

t.test('chunks written as text by the version before are read, and rewritten as bytes when written again', async (t) => {
  const h = await tempStore(t);
  let store = await h.open();
  const id = 'text.era';
  await store.write(Array.from({ length: 40 }, (_, i) => ({ id, t: T0 + i * MIN, v: i % 2 === 0 ? i : `s${i}ü` })));
  // Turn every chunk into the text form the version before stored (markers 2 and 5, latin1 characters, UTF-8 on disk).
  const ops: Array<{ type: 'put'; key: string; value: string }> = [];
  for (const [key, value] of await store.testHooks.entries({ gte: 'p!', lt: 's' })) {
    if (!key.includes(id)) continue;
    const bytes = value as Buffer;
    if (bytes[0] === 6) {
      const n = bytes.readUInt32LE(4);
      const head = Buffer.from(bytes.subarray(0, 8 + 16 * n));
      head[0] = 2;
      ops.push({ type: 'put', key, value: head.toString('latin1') + bytes.toString('utf8', 8 + 16 * n) });
    } else if (bytes[0] === 7) {
      const copy = Buffer.from(bytes);
      copy[0] = 5;
      ops.push({ type: 'put', key, value: copy.toString('latin1') });
    }
  }
  t.ok(ops.length >= 5, `${ops.length} chunks in the text form`);
  await store.testHooks.batch(ops);
  store = await h.open();
  const want = Array.from({ length: 40 }, (_, i) => ({ t: T0 + i * MIN, v: i % 2 === 0 ? i : `s${i}ü` }));
  t.same(await store.query(id, { limit: MAX_QUERY_LIMIT }), want, 'raw points read from the text form');
  const sums = await store.queryAggregate(id, { from: T0, to: T0 + 40 * MIN - 1, interval: 15 * MIN, agg: 'sum' });
  t.same(
    sums.map((b) => b.v),
    [0 + 2 + 4 + 6 + 8 + 10 + 12 + 14, 16 + 18 + 20 + 22 + 24 + 26 + 28, 30 + 32 + 34 + 36 + 38],
    'rollups read from the text form',
  );
  // A late value rewrites its chunks (merging the text form) as bytes.
  await store.write([{ id, t: T0 + 5 * MIN + 1, v: 100 }]);
  want.splice(6, 0, { t: T0 + 5 * MIN + 1, v: 100 });
  t.same(await store.query(id, { limit: MAX_QUERY_LIMIT }), want, 'merged with the late value');
  t.equal(await layoutViolation(store, id), undefined, 'layout');
  t.equal(await aggregateMismatch(store, id, want, T0, T0 + DAY), undefined, 'every rollup');
});

t.test('readings and buckets written one per key by earlier versions are read, and merged when written again', async (t) => {
  const h = await tempStore(t);
  let store = await h.open();
  // Earlier layout: p!<id>!<t> → [v], r!1m!<id>!<bucket> → one aggregate.
  const ops = [];
  for (let i = 0; i < 10; i++) {
    ops.push({ type: 'put' as const, key: pointKey('old', T0 + i * MIN), value: `[${i}]` });
    ops.push({ type: 'put' as const, key: rollupKey('1m', 'old', T0 + i * MIN), value: encodeAgg(singleAgg(T0 + i * MIN, i)) });
  }
  await store.testHooks.batch(ops);
  store = await h.open(); // reopen so the newest value is loaded from the old layout
  t.same(store.latest('old'), { t: T0 + 9 * MIN, v: 9 });
  t.same(
    (await store.query('old')).map((p) => p.v),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  // Overwrite three old readings and add new ones after them.
  await store.write([3, 4, 5, 10, 11].map((i) => ({ id: 'old', t: T0 + i * MIN, v: 100 + i })));
  t.same(
    (await store.query('old')).map((p) => p.v),
    [0, 1, 2, 103, 104, 105, 6, 7, 8, 9, 110, 111],
  );
  const perMinute = await store.queryAggregate('old', { from: T0, to: T0 + 12 * MIN - 1, interval: MIN, agg: 'last' });
  t.same(
    perMinute.map((p) => p.v),
    [0, 1, 2, 103, 104, 105, 6, 7, 8, 9, 110, 111],
  );
  const keys = await keysUnder(store, 'p!old!');
  t.ok(keys.length < 12, `the overwritten range was merged into chunks (${keys.length} keys)`);
});

/**
 * Bulk writes of the random model test: every 10 s (several readings per 1 min bucket), or
 * every 20 min like BMS trend data (every 1 min and 15 min bucket holds one reading).
 */
const bulkStep = (kind: number): number => (kind < 0.68 ? 10_000 : 20 * MIN);
const bulkCount = (kind: number): number => (kind < 0.68 ? 700 : 150);

t.test('random live, bulk, late and overwriting writes equal a plain model, across restarts', async (t) => {
  const h = await tempStore(t);
  let store = await h.open();
  const random = mulberry32(0xc4a7);
  const ids = ['m.a', 'm.b', 'm.c'];
  const model = new Map<string, Map<number, StoredValue>>(ids.map((id) => [id, new Map()]));
  let clock = T0 + 2 * DAY;
  const compare = async (label: string): Promise<void> => {
    for (const id of ids) {
      const violation = await layoutViolation(store, id);
      if (violation) {
        t.fail(`${label}: ${violation}`);
        return;
      }
      const lastPerMinute = new Map<number, number>();
      for (const p of [...model.get(id)!.values()].sort((a, b) => a.t - b.t)) if (typeof p.v === 'number') lastPerMinute.set(Math.floor(p.t / MIN) * MIN, p.v);
      const minutes = await store.queryAggregate(id, { from: T0, to: clock + DAY, interval: MIN, agg: 'last' });
      t.same(
        minutes.map((m) => [m.t, m.v]),
        [...lastPerMinute],
        `${label}: ${id} the last reading of every minute, in order`,
      );
      const want = [...model.get(id)!.values()].sort((a, b) => a.t - b.t);
      const got = await store.query(id, { limit: MAX_QUERY_LIMIT });
      if (got.length !== want.length || got.some((g, i) => g.t !== want[i]!.t || JSON.stringify(g) !== JSON.stringify(want[i]))) {
        t.fail(`${label}: ${id} differs from the model`, { got: got.length, want: want.length });
        return;
      }
      // A random window, both directions.
      const from = T0 + Math.floor(random() * (clock - T0));
      const to = from + Math.floor(random() * 6 * 3_600_000);
      const inWindow = want.filter((p) => p.t >= from && p.t <= to);
      t.same(await store.query(id, { from, to, limit: MAX_QUERY_LIMIT }), inWindow, `${label}: ${id} window`);
      t.same(await store.query(id, { from, to, order: 'desc', limit: 5 }), inWindow.reverse().slice(0, 5), `${label}: ${id} newest 5 of the window`);
      const mismatch = await aggregateMismatch(store, id, want, T0, clock + DAY);
      if (mismatch) t.fail(`${label}: ${mismatch}`);
      const counts = await store.queryAggregate(id, { from: T0, to: clock + DAY, interval: 15 * MIN, agg: 'count' });
      const numeric = want.filter((p) => typeof p.v === 'number' || typeof p.v === 'boolean');
      t.equal(
        counts.reduce((a, p) => a + p.v, 0),
        numeric.length,
        `${label}: ${id} rollups count every numeric reading`,
      );
    }
  };
  for (let round = 0; round < 120; round++) {
    const points: PointRecord[] = [];
    const kind = random();
    for (const id of ids) {
      const series = model.get(id)!;
      const times: number[] = [];
      if (kind < 0.6)
        times.push(clock + Math.floor(random() * 5000)); // live
      else if (kind < 0.75)
        for (let i = 0; i < bulkCount(kind); i++) times.push(clock + i * bulkStep(kind)); // bulk, crosses chunk limits
      else if (kind < 0.82) {
        // Late, anywhere, with one near the newest: old chunks are read, the cached newest ones must stay right.
        for (let i = 0; i < 3; i++) times.push(T0 + Math.floor(random() * (clock - T0 + 1)));
        for (let i = 0; i < 2; i++) times.push(T0 + Math.floor(random() * 6 * 3_600_000)); // more than a block before the rest
        times.push(clock - Math.floor(random() * 10 * MIN), clock + 60_000 + Math.floor(random() * 5000));
      } else if (kind < 0.9)
        for (let i = 0; i < 3; i++) times.push(clock - Math.floor(random() * 20 * MIN)); // late, near the newest
      else times.push(...[...series.keys()].filter(() => random() < 0.05)); // overwrites
      for (const time of times) {
        const r = random();
        const p: StoredValue = r < 0.05 ? { t: time, v: 'text' } : r < 0.08 ? { t: time, v: null, q: 'bad' } : { t: time, v: Math.round(random() * 1000) / 10 };
        points.push({ id, ...p });
        series.set(time, p);
      }
    }
    await store.write(points);
    // Live steps of up to 4 min leave empty buckets between readings, where late values then land.
    clock += kind >= 0.6 && kind < 0.75 ? bulkCount(kind) * bulkStep(kind) : 1000 + Math.floor(random() * 4 * MIN);
    if (round % 10 === 9) await compare(`round ${round}`);
    if (round % 40 === 39) store = await h.open(); // cold caches: the next writes must find the chunks on disk
  }
  await compare('end');
});

t.test('a failed commit leaves no trace in the cached newest chunks and buckets (updated in place by live appends)', async (t) => {
  const h = await tempStore(t);
  const store = await h.open();
  const ids = ['live.a', 'live.b'];
  const model = new Map<string, StoredValue[]>(ids.map((id) => [id, []]));
  let clock = T0 + 10 * MIN;
  const live = async (steps: number): Promise<void> => {
    for (let i = 0; i < steps; i++, clock += 7_000) {
      const points = ids.map((id, k) => ({ id, t: clock, v: (i * 7 + k * 3) % 19 }));
      await store.write(points);
      for (const p of points) model.get(p.id)!.push({ t: p.t, v: p.v });
    }
  };
  await live(40); // caches warm: every commit now extends the cached chunks and buckets in place
  failCommits(store, { once: true }); // the next commit fails, as a full disk makes it
  await t.rejects(store.write(ids.map((id) => ({ id, t: clock, v: 1000 }))), /injected write failure/, 'the commit fails');
  // Storage is read-only now and leaves that state only by reopening the database (storage/level/storage-alarm.ts).
  t.ok(store.readOnly, 'a failed write makes storage read-only');
  for (const end = Date.now() + 15_000; store.readOnly && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
  t.notOk(store.readOnly, 'it recovers by reopening');
  clock += 7_000;
  await live(40); // the same buckets, then new ones
  for (const id of ids) {
    t.same(await store.query(id, { limit: MAX_QUERY_LIMIT }), model.get(id), `${id}: raw points without the failed commit's`);
    t.equal(await aggregateMismatch(store, id, model.get(id)!, T0, clock + DAY), undefined, `${id}: every rollup without the failed commit's readings`);
    t.equal(await layoutViolation(store, id), undefined, `${id}: layout`);
  }
});

t.test('retention inside a chunk deletes exactly the older readings', async (t) => {
  const h = await tempStore(t);
  const store = await h.open();
  const points: PointRecord[] = Array.from({ length: 3 * 1440 }, (_, i) => ({ id: 'ret', t: T0 + i * MIN, v: i }));
  await store.write(points);
  const cutoff = T0 + DAY + 7 * 3_600_000 + 30 * MIN + 1; // inside a chunk of the second day
  const older = points.filter((p) => p.t < cutoff).length;
  t.equal(await store.deleteBefore('ret', cutoff), older, `${older} readings deleted`);
  const left = await store.query('ret', { limit: MAX_QUERY_LIMIT });
  t.equal(left.length, points.length - older);
  t.equal(left[0]!.t, Math.ceil(cutoff / MIN) * MIN, 'the first reading kept is the first at or after the cutoff');
  const buckets = await store.deleteBefore('ret', cutoff, '15m');
  t.equal(buckets, Math.ceil((cutoff - T0) / (15 * MIN)), '15 min buckets before the cutoff deleted');
  // Writing on after the cut: nothing deleted comes back.
  await store.write([{ id: 'ret', t: T0 + 3 * DAY, v: -1 }]);
  t.equal((await store.query('ret', { limit: MAX_QUERY_LIMIT })).length, points.length - older + 1);
});

t.test('a late value between the cached newest chunks, in a batch that also reads older chunks, keeps chunks apart', async (t) => {
  const h = await tempStore(t);
  const store = await h.open();
  // Cached rollup tail: the bucket at minute 0 (body) and at minute 146 (head, alone).
  await store.write([{ id: 'gap', t: T0 + 2 * DAY, v: 1 }]);
  await store.write([{ id: 'gap', t: T0 + 2 * DAY + 146 * MIN, v: 2 }]);
  // Two days earlier (its chunks must be read), minute 143 (an empty bucket between the two), minute 207 (new).
  await store.write([
    { id: 'gap', t: T0, v: 3 },
    { id: 'gap', t: T0 + 2 * DAY + 143 * MIN, v: 4 },
    { id: 'gap', t: T0 + 2 * DAY + 207 * MIN, v: 5 },
  ]);
  t.equal(await layoutViolation(store, 'gap'), undefined, 'no chunk overlaps another');
  const minutes = await store.queryAggregate('gap', { from: T0, to: T0 + 3 * DAY, interval: MIN, agg: 'last' });
  t.same(
    minutes.map((m) => m.v),
    [3, 1, 4, 2, 5],
    'every minute once, in order',
  );
});

t.test('rollups that outlived their raw points (retention) merge with late writes after a restart', async (t) => {
  const h = await tempStore(t);
  let store = await h.open();
  // Ten days, one reading a day; then every raw point expires, the rollups stay.
  await store.write(Array.from({ length: 10 }, (_, i) => ({ id: 'old', t: T0 + i * DAY, v: i })));
  t.equal(await store.deleteBefore('old', T0 + 11 * DAY), 10, 'raw points expired');
  store = await h.open(); // no raw points left: the newest bucket must come from the rollups
  await store.write([{ id: 'old', t: T0 + 3 * DAY + 1, v: 30 }]);
  await store.write([{ id: 'old', t: T0 + 5 * DAY + 1, v: 50 }]); // a second batch, after latest is known again
  await store.write([{ id: 'old', t: T0 + 1, v: 100 }]);
  t.equal(await layoutViolation(store, 'old'), undefined, 'no chunk overlaps another, none replaced');
  const days = await store.queryAggregate('old', { from: T0, to: T0 + 10 * DAY - 1, interval: DAY, agg: 'count' });
  t.same(
    days.map((d) => [d.t, d.v]),
    Array.from({ length: 10 }, (_, i) => [T0 + i * DAY, i === 0 || i === 3 || i === 5 ? 2 : 1]),
    'every day once, in order, the late readings counted in',
  );
  const sums = await store.queryAggregate('old', { from: T0, to: T0 + 10 * DAY - 1, interval: DAY, agg: 'sum' });
  t.same(
    sums.map((d) => d.v),
    [100, 1, 2, 33, 4, 55, 6, 7, 8, 9],
  );
});

t.test('trend data in bulk (one reading per 1 min and 15 min bucket), then late, live and reused points: every rollup equals the model', async (t) => {
  const h = await tempStore(t);
  let store = await h.open();
  const want: StoredValue[] = [];
  const write = async (points: PointRecord[]): Promise<void> => {
    await store.write(points);
    for (const p of points) want.push(p.q ? { t: p.t, v: p.v, q: p.q } : { t: p.t, v: p.v });
  };
  // 20 readings 15 min apart in one batch: the 15 min chunk before the newest bucket holds 19 (< ROLLUP_LIVE_MAX), so it stays cached.
  await write(Array.from({ length: 20 }, (_, i) => ({ id: 'bms', t: T0 + i * 15 * MIN, v: 10 + i })));
  // After the reading of bucket 18 (inside the cached chunk): that bucket's aggregate is updated, not replaced.
  await write([{ id: 'bms', t: T0 + 18 * 15 * MIN + 5 * MIN, v: 7 }]);
  t.equal(await aggregateMismatch(store, 'bms', want, T0, T0 + DAY), undefined, 'a late reading after a bucket written in bulk');
  // Live readings into the newest bucket and beyond, reusing one point object as some adapters do.
  const reused: PointRecord = { id: 'bms', t: T0 + 19 * 15 * MIN + MIN, v: 1 };
  for (let i = 0; i < 5; i++) {
    reused.t = T0 + 19 * 15 * MIN + (i + 1) * 4 * MIN;
    reused.v = 100 + i;
    await write([reused]);
  }
  reused.v = -1; // after the last write: must change nothing stored or cached
  await write([{ id: 'bms', t: T0 + 21 * 15 * MIN, v: 1 }]);
  t.equal(await aggregateMismatch(store, 'bms', want, T0, T0 + DAY), undefined, 'live readings after the bulk, one point object reused');
  t.same(
    (await store.query('bms', { limit: MAX_QUERY_LIMIT })).map((p) => p.v),
    want.sort((a, b) => a.t - b.t).map((p) => p.v),
    'raw points as written',
  );
  t.same(store.latest('bms'), { t: T0 + 21 * 15 * MIN, v: 1 }, 'the latest reading is a copy of what was written');
  store = await h.open();
  t.equal(await aggregateMismatch(store, 'bms', want, T0, T0 + DAY), undefined, 'after a restart');
});
