/**
 * Overwrites in bulk (issue 21, item 1: a trend file imported again): LevelStore against a
 * plain model when whole ranges of many datapoints are written again, in commits larger than
 * what the general write path handles at once (storage/level/batch.ts READ_SLICE_POINTS), with
 * the same values (nothing may be rewritten), with every value changed (raw points and every
 * rollup exactly the new ones), and as sparse readings over densely stored ones (only the
 * chunks they land in are rewritten).
 */
import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHUNK_MAX, KEEP_BOUNDARY_MIN, RAW_BLOCK_MS, cut, rawCodec, rollupBlockMs, rollupCodec } from '../../storage/level/chunks.js';
import { LevelStore } from '../../storage/level/level-store.js';
import { RESOLUTIONS, decodeAgg } from '../../storage/rollups.js';
import { MAX_QUERY_LIMIT, type PointRecord, type StoredValue } from '../../storage/store.js';
import type { Value } from '../../core/datapoint.js';
import { aggregateMismatch } from './rollup-model.js';

const T0 = Date.UTC(2025, 2, 3, 6);
const MIN = 60_000;
const DAY = 86_400_000;
const aggCodec = rollupCodec(decodeAgg);

async function tempStore(t: Test): Promise<{ open(): Promise<LevelStore> }> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-overwrite-'));
  let current: LevelStore | undefined;
  t.teardown(async () => {
    await current?.close();
    await rm(dir, { recursive: true, force: true });
  });
  return {
    async open() {
      await current?.close();
      current = new LevelStore({ path: join(dir, 'db'), sync: false });
      await current.open();
      return current;
    },
  };
}

/** Every chunk (raw and rollups) as stored: key → value bytes. */
async function chunksOnDisk(store: LevelStore, prefix = ''): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const [key, value] of await store.testHooks.entries({ gte: 'p!' + prefix, lt: 's' })) {
    if (key.startsWith('p!' + prefix) || (prefix === '' && key.startsWith('r!'))) out.set(key, Buffer.from(value as Buffer).toString('hex'));
  }
  return out;
}

/** The layout invariants of `id`'s chunked series: key = first entry, ascending, no overlap, no block crossed, at most CHUNK_MAX. */
async function layoutViolation(store: LevelStore, id: string): Promise<string | undefined> {
  const series = [
    { prefix: `p!${id}!`, blockMs: RAW_BLOCK_MS, codec: rawCodec as typeof rawCodec | typeof aggCodec },
    ...RESOLUTIONS.map((r) => ({ prefix: `r!${r.name}!${id}!`, blockMs: rollupBlockMs(r.ms), codec: aggCodec })),
  ];
  for (const { prefix, blockMs, codec } of series) {
    let previousLast = -Infinity;
    for (const [key, value] of await store.testHooks.entries({ gte: prefix, lt: prefix + '\xff' })) {
      const keyT = Number(key.slice(prefix.length));
      const { ts } = codec.decode(keyT, value);
      if (ts[0] !== keyT) return `${key}: first entry is not the key's time`;
      if (ts.some((x, i) => i > 0 && x <= ts[i - 1]!)) return `${key}: entries out of order`;
      if (ts[0]! <= previousLast) return `${key}: overlaps the chunk before it`;
      if (Math.floor(ts[0]! / blockMs) !== Math.floor(ts[ts.length - 1]! / blockMs)) return `${key}: crosses a block`;
      if (ts.length > CHUNK_MAX) return `${key}: ${ts.length} entries`;
      previousLast = ts[ts.length - 1]!;
    }
  }
  return undefined;
}

/** A trend report's readings: `ids` datapoints × `rows` rows 15 min apart, numbers mostly, some booleans and gaps (null, bad). */
function report(ids: string[], rows: number, value: (i: number, r: number) => Value): { points: PointRecord[]; model: Map<string, Map<number, StoredValue>> } {
  const points: PointRecord[] = [];
  const model = new Map<string, Map<number, StoredValue>>(ids.map((id) => [id, new Map()]));
  for (let r = 0; r < rows; r++) {
    const t = T0 + r * 15 * MIN;
    for (let i = 0; i < ids.length; i++) {
      const v = value(i, r);
      const p: PointRecord = v === null ? { id: ids[i]!, t, v, q: 'bad' } : { id: ids[i]!, t, v };
      points.push(p);
      model.get(ids[i]!)!.set(t, p.q ? { t, v, q: p.q } : { t, v });
    }
  }
  return { points, model };
}

/** Writes in commits of `batch` points, two in flight (as the BMS importer does). */
async function writeAll(store: LevelStore, points: PointRecord[], batch: number): Promise<void> {
  const inFlight: Array<Promise<void>> = [];
  for (let i = 0; i < points.length; i += batch) {
    inFlight.push(store.write(points.slice(i, i + batch)));
    if (inFlight.length >= 2) await inFlight.shift();
  }
  await Promise.all(inFlight);
}

/** The first datapoint whose raw points or rollups differ from the model, or whose chunks break the layout. */
async function mismatch(
  store: LevelStore,
  model: Map<string, Map<number, StoredValue>>,
  from: number,
  to: number,
  rollupsOf: string[],
): Promise<string | undefined> {
  for (const [id, byTime] of model) {
    const want = [...byTime.values()].sort((a, b) => a.t - b.t);
    const got = await store.query(id, { from, to, limit: MAX_QUERY_LIMIT });
    if (got.length !== want.length) return `${id}: ${got.length} raw points, model ${want.length}`;
    for (let i = 0; i < want.length; i++) {
      const g = got[i]!;
      const w = want[i]!;
      if (g.t !== w.t || !Object.is(g.v, w.v) || g.q !== w.q)
        return `${id} at ${new Date(w.t).toISOString()}: ${JSON.stringify(g)}, model ${JSON.stringify(w)}`;
    }
    const layout = await layoutViolation(store, id);
    if (layout) return layout;
  }
  for (const id of rollupsOf) {
    const m = await aggregateMismatch(store, id, [...model.get(id)!.values()], from, to);
    if (m) return m;
  }
  return undefined;
}

t.test('cut keeps the starts of rewritten chunks once the chunk before holds KEEP_BOUNDARY_MIN entries', async (t) => {
  const ts = Array.from({ length: 300 }, (_, i) => i * 1000);
  t.same(
    cut(ts, ts, RAW_BLOCK_MS, 'none', undefined, [0, 100_000, 200_000]).map((p) => p.ts[0]),
    [0, 100_000, 200_000],
    'chunks of 100 keep their starts',
  );
  t.same(
    cut(ts, ts, RAW_BLOCK_MS, 'none', undefined, [0, (KEEP_BOUNDARY_MIN - 10) * 1000, 200_000]).map((p) => p.ts[0]),
    [0, 200_000],
    'a start after fewer than KEEP_BOUNDARY_MIN entries is joined',
  );
  t.same(
    cut(ts, ts, RAW_BLOCK_MS, 'none').map((p) => p.ts.length),
    [300],
    'without starts: one chunk',
  );
});

t.test('a trend file written again: same values rewrite nothing; changed values are stored exactly, rollups too, across a restart', async (t) => {
  const h = await tempStore(t);
  let store = await h.open();
  const ids = Array.from({ length: 24 }, (_, i) => `site.p${i}`);
  const rows = 1500; // 15.6 days of 15 min rows: 36,000 readings, commits of 10,000 (several slices each)
  const base = (i: number, r: number): Value =>
    i === 3 ? r % 96 > 40 && r % 96 < 80 : (r * 7 + i * 13) % 53 === 0 ? null : Math.round(Math.sin(r / 9 + i) * 5000) / 100 + i;
  const first = report(ids, rows, base);
  await writeAll(store, first.points, 10_000);
  const from = T0;
  const to = T0 + rows * 15 * MIN;
  t.equal(await mismatch(store, first.model, from, to, ['site.p0', 'site.p3']), undefined, 'the first import equals the model');

  // The same file again: every reading an overwrite with the value it has.
  const before = await chunksOnDisk(store);
  const seqBefore = store.stats().lastSeq;
  await writeAll(store, report(ids, rows, base).points, 10_000);
  t.same(await chunksOnDisk(store), before, 'no chunk is rewritten: raw points and rollups byte for byte as they were');
  t.equal(store.stats().lastSeq - seqBefore, first.points.length, 'every reading is still queued for upstream (outbox)');

  // Every value changed (numbers moved, booleans flipped, gaps filled and made), and readings
  // added between the rows of one datapoint: each bucket is exactly the new readings'.
  const changed = report(ids, rows, (i, r) => {
    const v = base(i, r);
    if (typeof v === 'boolean') return !v;
    if (v === null) return -1;
    return r % 101 === 0 ? null : (v as number) * 2 + 0.25;
  });
  const extra: PointRecord[] = [];
  for (let r = 0; r < rows; r += 3) {
    const p = { id: 'site.p0', t: T0 + r * 15 * MIN + 7 * MIN, v: r };
    extra.push(p);
    changed.model.get('site.p0')!.set(p.t, { t: p.t, v: p.v });
  }
  await writeAll(store, [...changed.points, ...extra], 10_000);
  t.equal(
    await mismatch(store, changed.model, from, to, ['site.p0', 'site.p1', 'site.p3', 'site.p23']),
    undefined,
    'every value changed: raw and every rollup equal the model',
  );
  store = await h.open();
  t.equal(await mismatch(store, changed.model, from, to, ['site.p0', 'site.p3']), undefined, 'and after a restart (current buckets recomputed)');
  // Live readings after the re-import extend it as before.
  await store.write([{ id: 'site.p1', t: to + MIN, v: 1 }]);
  changed.model.get('site.p1')!.set(to + MIN, { t: to + MIN, v: 1 });
  t.equal(await aggregateMismatch(store, 'site.p1', [...changed.model.get('site.p1')!.values()], from, to + DAY), undefined, 'a live reading after it');
});

t.test('sparse readings over densely stored ones: only the chunks they land in are rewritten', async (t) => {
  const h = await tempStore(t);
  let store = await h.open();
  const model = new Map<number, StoredValue>();
  const dense: PointRecord[] = [];
  for (let s = 0; s < 86_400; s++) {
    const p = { id: 'dense', t: T0 + s * 1000, v: (s % 600) / 10 };
    dense.push(p);
    model.set(p.t, { t: p.t, v: p.v });
  }
  await writeAll(store, dense, 20_000);
  const raw = async (): Promise<Map<string, string>> => chunksOnDisk(store, 'dense!');
  const before = await raw();
  // One reading an hour overwritten, one added between two stored ones: 48 chunks at most of ~170.
  const sparse: PointRecord[] = [];
  for (let hour = 0; hour < 24; hour++) {
    sparse.push({ id: 'dense', t: T0 + hour * 3_600_000 + 1000, v: -hour });
    sparse.push({ id: 'dense', t: T0 + hour * 3_600_000 + 1500, v: hour });
  }
  for (const p of sparse) model.set(p.t, { t: p.t, v: p.v });
  await store.write(sparse);
  const after = await raw();
  const rewritten = [...after].filter(([key, value]) => before.get(key) !== value).length;
  t.ok(rewritten <= sparse.length, `${rewritten} of ${before.size} raw chunks rewritten or added (at most one per reading: a full chunk is split)`);
  const want = new Map([['dense', model]]);
  t.equal(await mismatch(store, want, T0, T0 + DAY, ['dense']), undefined, 'raw points and every rollup equal the model');
  store = await h.open();
  t.equal(await mismatch(store, want, T0, T0 + DAY, ['dense']), undefined, 'after a restart');
});
