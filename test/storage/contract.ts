/**
 * The storage contract: every Store implementation runs this suite
 * (test/storage/memory-store.test.ts, test/storage/level-store.test.ts).
 * Aggregates are checked against a naive reference computed here from the raw points
 * the test itself wrote, not against any store's own code.
 */
import type { Test } from 'tap';
import type { PointRecord, Store, StoredValue } from '../../storage/store.js';
import { MAX_QUERY_LIMIT } from '../../storage/store.js';
import type { Aggregation } from '../../storage/rollups.js';
import { isOutpostError } from '../../core/errors.js';
import { mulberry32 } from '../helpers/rng.js';

export interface StoreHarness {
  /** A fresh, opened, empty store. */
  open(): Promise<Store>;
  /** Closes the store and opens the same storage again; absent when the store is not persistent. */
  reopen?(store: Store): Promise<Store>;
}

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const T0 = Date.UTC(2025, 0, 6); // a Monday, midnight UTC

const dp = (id: string) => ({ id, adapter: 'virtual', kind: 'sensor' as const, type: 'number' as const, description: `test ${id}` });

async function rejectsWith(t: Test, fn: () => Promise<unknown>, code: string, what: string): Promise<void> {
  try {
    await fn();
    t.fail(`${what}: expected ${code}, resolved`);
  } catch (err) {
    t.ok(isOutpostError(err) && err.code === code, `${what}: ${code}`, { found: err });
  }
}

const rng = mulberry32;

/** Naive reference: per interval, from every numeric reading sorted by time. */
function reference(
  points: Map<number, StoredValue>,
  from: number,
  to: number,
  interval: number,
  agg: Aggregation,
): Array<{ t: number; v: number; count: number }> {
  const numeric = [...points.values()]
    .map((p) => ({ t: p.t, v: typeof p.v === 'number' ? p.v : typeof p.v === 'boolean' ? (p.v ? 1 : 0) : undefined }))
    .filter((p): p is { t: number; v: number } => p.v !== undefined)
    .sort((a, b) => a.t - b.t);
  const start = Math.floor(from / interval) * interval;
  const end = Math.floor(to / interval) * interval + interval - 1;
  const out: Array<{ t: number; v: number; count: number }> = [];
  for (let s = start; s <= end; s += interval) {
    const inside = numeric.filter((p) => p.t >= s && p.t < s + interval);
    if (inside.length === 0) continue;
    const vs = inside.map((p) => p.v);
    let v: number;
    switch (agg) {
      case 'avg':
        v = vs.reduce((a, b) => a + b, 0) / vs.length;
        break;
      case 'sum':
        v = vs.reduce((a, b) => a + b, 0);
        break;
      case 'min':
        v = Math.min(...vs);
        break;
      case 'max':
        v = Math.max(...vs);
        break;
      case 'first':
        v = vs[0]!;
        break;
      case 'last':
        v = vs[vs.length - 1]!;
        break;
      case 'count':
        v = vs.length;
        break;
      case 'delta': {
        // Consumption: every step between consecutive readings whose later reading is in
        // this interval; a drop is a reset, the counter counted up from 0 to the new value.
        v = 0;
        for (const p of inside) {
          const i = numeric.indexOf(p);
          if (i === 0) continue;
          const prev = numeric[i - 1]!.v;
          v += p.v >= prev ? p.v - prev : p.v;
        }
        break;
      }
    }
    out.push({ t: s, v, count: vs.length });
  }
  return out;
}

function close(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(a), Math.abs(b));
}

export function storeContract(t: Test, name: string, makeHarness: (t: Test) => Promise<StoreHarness>): void {
  t.test(`${name}: write and query by range, order and limit`, async (t) => {
    const h = await makeHarness(t);
    const store = await h.open();
    const points: PointRecord[] = [];
    for (let i = 0; i < 100; i++) points.push({ id: 'a', t: T0 + i * 1000, v: i });
    // Shuffled: storage orders by measurement time, not arrival.
    await store.write(points.slice(50));
    await store.write(points.slice(0, 50));
    const all = await store.query('a');
    t.equal(all.length, 100);
    t.same(
      all.map((p) => p.v),
      points.map((p) => p.v),
      'ascending by t',
    );
    const range = await store.query('a', { from: T0 + 10_000, to: T0 + 20_000 });
    t.same([range[0]!.t, range.at(-1)!.t, range.length], [T0 + 10_000, T0 + 20_000, 11], 'from/to inclusive');
    const desc = await store.query('a', { order: 'desc', limit: 3 });
    t.same(
      desc.map((p) => p.v),
      [99, 98, 97],
      'desc with limit',
    );
    t.equal((await store.query('a', { limit: MAX_QUERY_LIMIT * 10 })).length, 100, 'limit above the cap is capped, not an error');
    t.same(await store.query('nothing'), [], 'unknown id: empty');
    t.same(await store.query('a', { from: T0 + 1e9 }), [], 'empty range');
    await store.close();
  });

  t.test(`${name}: ids that prefix each other do not mix`, async (t) => {
    const h = await makeHarness(t);
    const store = await h.open();
    await store.write([
      { id: 'a', t: T0, v: 1 },
      { id: 'a.b', t: T0, v: 2 },
      { id: 'a-b', t: T0, v: 3 },
      { id: 'a_b', t: T0 + 1, v: 4 },
      { id: 'ab', t: T0 + 2, v: 5 },
    ]);
    t.same(
      (await store.query('a')).map((p) => p.v),
      [1],
    );
    t.same(
      (await store.query('a.b')).map((p) => p.v),
      [2],
    );
    t.same(
      (await store.query('ab')).map((p) => p.v),
      [5],
    );
    t.equal(store.latest('a')?.v, 1);
    await store.close();
  });

  t.test(`${name}: value types and quality round-trip`, async (t) => {
    const h = await makeHarness(t);
    const store = await h.open();
    const values: StoredValue[] = [
      { t: T0, v: 1.5 },
      { t: T0 + 1, v: true },
      { t: T0 + 2, v: 'text with "quotes" and ! marks' },
      { t: T0 + 3, v: { nested: [1, 2, { x: null }] } },
      { t: T0 + 4, v: null, q: 'stale' },
      { t: T0 + 5, v: null, q: 'bad' },
      { t: T0 + 6, v: -0.000123 },
    ];
    await store.write(values.map((v) => ({ id: 'mixed', ...v })));
    t.same(await store.query('mixed'), values);
    t.same(store.latest('mixed'), values.at(-1));
    await store.close();
  });

  t.test(`${name}: latest is the newest by measurement time, not by arrival`, async (t) => {
    const h = await makeHarness(t);
    const store = await h.open();
    t.equal(store.latest('x'), undefined);
    await store.write([{ id: 'x', t: T0 + 5000, v: 5 }]);
    await store.write([{ id: 'x', t: T0 + 1000, v: 1 }]);
    t.same(store.latest('x'), { t: T0 + 5000, v: 5 }, 'late older value does not replace latest');
    await store.write([{ id: 'x', t: T0 + 5000, v: 6 }]);
    t.same(store.latest('x'), { t: T0 + 5000, v: 6 }, 'overwrite of the newest updates latest');
    await store.close();
  });

  t.test(`${name}: same (id, t) overwrites; imports are idempotent`, async (t) => {
    const h = await makeHarness(t);
    const store = await h.open();
    const batch = Array.from({ length: 20 }, (_, i) => ({ id: 'imp', t: T0 + i * MIN, v: i }));
    await store.write(batch);
    await store.write(batch);
    await store.write([{ id: 'imp', t: T0 + 3 * MIN, v: 300 }]);
    const got = await store.query('imp');
    t.equal(got.length, 20, 'no duplicates');
    t.equal(got[3]!.v, 300, 'last write wins');
    t.equal(store.stats().lastSeq, 41, 'every accepted write still gets an outbox record');
    const agg = await store.queryAggregate('imp', { from: T0, to: T0 + HOUR - 1, interval: HOUR, agg: 'sum' });
    t.same(agg, [{ t: T0, v: 190 - 3 + 300, count: 20 }], 'rollup reflects the overwrite, not the duplicates');
    await store.close();
  });

  t.test(`${name}: outbox records carry every kind of value exactly`, async (t) => {
    const h = await makeHarness(t);
    const store = await h.open();
    const points: PointRecord[] = [
      { id: 'ob.n', t: T0, v: -1.5e-7 },
      { id: 'ob.n', t: T0 + 1, v: 1e21 },
      { id: 'ob.s', t: T0, v: 'say "hi" \\ \u2028 ü €' },
      { id: 'ob.b', t: T0, v: false },
      { id: 'ob.j', t: T0, v: { a: [1, 'x', null], b: { c: true } } },
      { id: 'ob.q', t: T0, v: 42, q: 'stale' },
      { id: 'ob.q', t: T0 + 1, v: null, q: 'bad' },
    ];
    await store.write(points);
    t.same(
      (await store.readOutbox(0, 100)).map(({ seq: _seq, ...r }) => r),
      points,
    );
    await store.close();
  });

  t.test(`${name}: outbox numbering, reading and acknowledging`, async (t) => {
    const h = await makeHarness(t);
    const store = await h.open();
    t.equal(store.stats().lastSeq, 0);
    await store.write([
      { id: 'o', t: T0, v: 1 },
      { id: 'o', t: T0 + 1, v: null, q: 'bad' },
    ]);
    await Promise.all(Array.from({ length: 30 }, (_, i) => store.write([{ id: `o${i % 3}`, t: T0 + i, v: i }])));
    const all = await store.readOutbox(0, 1000);
    t.equal(all.length, 32);
    t.same(
      all.map((r) => r.seq),
      Array.from({ length: 32 }, (_, i) => i + 1),
      'gap-free, ascending, unique under concurrent writers',
    );
    t.same(all[1], { seq: 2, id: 'o', t: T0 + 1, v: null, q: 'bad' });
    t.same(
      (await store.readOutbox(10, 5)).map((r) => r.seq),
      [11, 12, 13, 14, 15],
      'after + limit',
    );
    t.equal(await store.ackOutbox(10), 10, 'ack deletes acknowledged records');
    t.same(
      (await store.readOutbox(0, 3)).map((r) => r.seq),
      [11, 12, 13],
      'acknowledged records are gone',
    );
    t.equal(await store.ackOutbox(5), 0, 'a lower ack is a no-op');
    t.equal(await store.ackOutbox(1000), 22, 'ack above the high-water mark is capped');
    t.same(await store.readOutbox(0, 10), []);
    const s = store.stats();
    t.same([s.lastSeq, s.ackedSeq, s.outboxDepth], [32, 32, 0]);
    await rejectsWith(t, () => store.ackOutbox(-1), 'BAD_REQUEST', 'negative ack');
    await rejectsWith(t, () => store.ackOutbox(1.5), 'BAD_REQUEST', 'fractional ack');
    await store.write([{ id: 'o', t: T0 + 99, v: 9 }]);
    t.same(
      (await store.readOutbox(0, 10)).map((r) => r.seq),
      [33],
      'numbers are never reused after a drain',
    );
    // A restore stores history without queueing it for sync again.
    await store.write(
      [
        { id: 'restored', t: T0, v: 1 },
        { id: 'o', t: T0 + 100, v: 10 },
      ],
      { outbox: false },
    );
    t.same(
      (await store.query('restored')).map((p) => p.v),
      [1],
      'outbox:false points are stored',
    );
    t.equal(store.latest('o')?.v, 10, 'and become the latest value');
    t.equal(store.stats().lastSeq, 33, 'but take no sequence number');
    await Promise.all([store.write([{ id: 'o', t: T0 + 101, v: 11 }]), store.write([{ id: 'restored', t: T0 + 1, v: 2 }], { outbox: false })]);
    t.same(
      (await store.readOutbox(33, 10)).map((r) => [r.seq, r.id, r.v]),
      [[34, 'o', 11]],
      'mixed in one group commit: only the synced point is queued',
    );
    await store.close();
  });

  t.test(`${name}: datapoint metadata`, async (t) => {
    const h = await makeHarness(t);
    const store = await h.open();
    await store.putDatapoint(dp('m.one'));
    await store.putDatapoint(dp('m.two'));
    await store.putDatapoint({ ...dp('m.one'), unit: 'kW' });
    const list = (await store.listDatapoints()).sort((a, b) => a.id.localeCompare(b.id));
    t.same(
      list.map((d) => [d.id, d.unit]),
      [
        ['m.one', 'kW'],
        ['m.two', undefined],
      ],
    );
    await store.putDatapoints([{ ...dp('m.two'), unit: 'W' }, dp('m.three'), dp('m.four')]);
    const after = (await store.listDatapoints()).sort((a, b) => a.id.localeCompare(b.id));
    t.same(
      after.map((d) => [d.id, d.unit]),
      [
        ['m.four', undefined],
        ['m.one', 'kW'],
        ['m.three', undefined],
        ['m.two', 'W'],
      ],
      'several at once, one of them an update',
    );
    await store.close();
  });

  t.test(`${name}: a closed store refuses every operation`, async (t) => {
    const h = await makeHarness(t);
    const store = await h.open();
    await store.write([{ id: 'c', t: T0, v: 1 }]);
    await store.close();
    await rejectsWith(t, () => store.write([{ id: 'c', t: T0 + 1, v: 2 }]), 'STORAGE_CLOSED', 'write');
    await rejectsWith(t, () => store.query('c'), 'STORAGE_CLOSED', 'query');
    await rejectsWith(t, () => store.readOutbox(0, 10), 'STORAGE_CLOSED', 'readOutbox');
    await rejectsWith(t, () => store.ackOutbox(1), 'STORAGE_CLOSED', 'ackOutbox');
    await rejectsWith(t, () => store.queryAggregate('c', { from: T0, to: T0 + DAY, interval: HOUR, agg: 'avg' }), 'STORAGE_CLOSED', 'queryAggregate');
    await rejectsWith(t, () => store.putDatapoint(dp('c')), 'STORAGE_CLOSED', 'putDatapoint');
    await store.close(); // idempotent
  });

  t.test(`${name}: aggregates — hand-checked cases`, async (t) => {
    const h = await makeHarness(t);
    const store = await h.open();
    // Two hours of 5-minute readings; values 0..23.
    await store.write(Array.from({ length: 24 }, (_, i) => ({ id: 'h', t: T0 + i * 5 * MIN, v: i })));
    const q = (agg: Aggregation, interval = HOUR) => store.queryAggregate('h', { from: T0, to: T0 + 2 * HOUR - 1, interval, agg });
    t.same(await q('count'), [
      { t: T0, v: 12, count: 12 },
      { t: T0 + HOUR, v: 12, count: 12 },
    ]);
    t.same(
      (await q('sum')).map((p) => p.v),
      [66, 210],
    );
    t.same(
      (await q('avg')).map((p) => p.v),
      [5.5, 17.5],
    );
    t.same(
      (await q('min')).map((p) => p.v),
      [0, 12],
    );
    t.same(
      (await q('max')).map((p) => p.v),
      [11, 23],
    );
    t.same(
      (await q('first')).map((p) => p.v),
      [0, 12],
    );
    t.same(
      (await q('last')).map((p) => p.v),
      [11, 23],
    );
    t.same(
      (await q('avg', 15 * MIN)).map((p) => p.v),
      [1, 4, 7, 10, 13, 16, 19, 22],
    );
    t.same(
      (await q('sum', DAY)).map((p) => [p.t, p.v]),
      [[T0, 276]],
      'interval longer than the range',
    );
    t.same(
      (await q('sum', 2 * HOUR)).map((p) => p.v),
      [276],
      'interval of several buckets',
    );

    // A late value lands in the right buckets and becomes first by time, not by arrival.
    await store.write([{ id: 'h', t: T0 - 1, v: 100 }]);
    await store.write([{ id: 'h', t: T0 + 7 * MIN, v: -50 }]);
    t.same(
      (await q('min')).map((p) => p.v),
      [-50, 12],
      'late minimum inside a bucket',
    );
    t.same(
      (await store.queryAggregate('h', { from: T0 - HOUR, to: T0 - 1, interval: HOUR, agg: 'last' })).map((p) => p.v),
      [100],
      'late value in a new earlier bucket',
    );
    // Overwriting the minimum with a larger value must restore the previous minimum.
    await store.write([{ id: 'h', t: T0 + 7 * MIN, v: 5 }]);
    t.same(
      (await q('min')).map((p) => p.v),
      [0, 12],
      'overwritten minimum is corrected',
    );
    await store.write([{ id: 'h', t: T0, v: 42 }]);
    t.same(
      (await q('first')).map((p) => p.v),
      [42, 12],
      'overwritten first',
    );
    t.same(
      (await q('max')).map((p) => p.v),
      [42, 23],
      'overwrite raises the maximum',
    );
    await store.write([{ id: 'h', t: T0, v: null, q: 'bad' }]);
    t.same(
      (await q('count')).map((p) => p.v),
      [12, 12],
      'a reading replaced by a bad one leaves the rollup',
    );
    t.same(
      (await q('first')).map((p) => p.v),
      [1, 12],
    );

    // Booleans count as 0/1 (duty cycle); strings not at all.
    await store.write([
      { id: 'pump', t: T0, v: true },
      { id: 'pump', t: T0 + MIN, v: false },
      { id: 'pump', t: T0 + 2 * MIN, v: true },
      { id: 'pump', t: T0 + 3 * MIN, v: true },
      { id: 'txt', t: T0, v: 'hello' },
    ]);
    t.same(
      (await store.queryAggregate('pump', { from: T0, to: T0 + HOUR, interval: HOUR, agg: 'avg' })).map((p) => p.v),
      [0.75],
    );
    t.same(await store.queryAggregate('txt', { from: T0, to: T0 + HOUR, interval: HOUR, agg: 'count' }), []);
    await store.close();
  });

  t.test(`${name}: delta of an energy counter, with a reset`, async (t) => {
    const h = await makeHarness(t);
    const store = await h.open();
    // kWh register read every 20 min; the meter is replaced before 03:00 (reads 3 after 150).
    const readings = [100, 104, 110, 111, 120, 125, 130, 140, 150, 3, 8, 20];
    await store.write(readings.map((v, i) => ({ id: 'kwh', t: T0 + i * 20 * MIN, v })));
    const hourly = await store.queryAggregate('kwh', { from: T0, to: T0 + 4 * HOUR - 1, interval: HOUR, agg: 'delta' });
    // 00h: 100→104→110 = 10; 01h: 110→111→120→125 = 15; 02h: 125→130→140→150 = 25;
    // 03h: 150→3 (reset: +3), 3→8, 8→20 = 3+5+12 = 20.
    t.same(
      hourly.map((p) => p.v),
      [10, 15, 25, 20],
    );
    const total = await store.queryAggregate('kwh', { from: T0, to: T0 + 4 * HOUR - 1, interval: DAY, agg: 'delta' });
    t.same(
      total.map((p) => p.v),
      [70],
      'the day is the sum of its hours',
    );
    const from2h = await store.queryAggregate('kwh', { from: T0 + 2 * HOUR, to: T0 + 4 * HOUR - 1, interval: HOUR, agg: 'delta' });
    t.same(
      from2h.map((p) => p.v),
      [25, 20],
      'the first interval counts from the reading before it',
    );
    // A late reading inside an interval changes nothing when it is monotonic.
    await store.write([{ id: 'kwh', t: T0 + 30 * MIN, v: 107 }]);
    t.same(
      (await store.queryAggregate('kwh', { from: T0, to: T0 + 4 * HOUR - 1, interval: HOUR, agg: 'delta' })).map((p) => p.v),
      [10, 15, 25, 20],
    );
    await store.close();
  });

  t.test(`${name}: aggregate query refuses bad input`, async (t) => {
    const h = await makeHarness(t);
    const store = await h.open();
    const base = { from: T0, to: T0 + DAY, interval: HOUR, agg: 'avg' as Aggregation };
    await rejectsWith(t, () => store.queryAggregate('a', { ...base, interval: 30_000 }), 'BAD_REQUEST', 'sub-minute interval');
    await rejectsWith(t, () => store.queryAggregate('a', { ...base, interval: 90_000 }), 'BAD_REQUEST', 'interval not whole minutes');
    await rejectsWith(t, () => store.queryAggregate('a', { ...base, from: T0 + 2 * DAY }), 'BAD_REQUEST', 'from after to');
    await rejectsWith(t, () => store.queryAggregate('a', { ...base, agg: 'median' as Aggregation }), 'BAD_REQUEST', 'unknown agg');
    await rejectsWith(t, () => store.queryAggregate('a', { ...base, from: NaN }), 'BAD_REQUEST', 'NaN from');
    await store.close();
  });

  t.test(`${name}: aggregates equal the naive reference under random late writes, overwrites and resets`, async (t) => {
    const h = await makeHarness(t);
    let store = await h.open();
    const random = rng(0x5eed);
    const model = new Map<string, Map<number, StoredValue>>();
    const ids = ['r.one', 'r.two', 'r.counter'];
    for (const id of ids) model.set(id, new Map());
    let counter = 1000;
    for (let batch = 0; batch < 60; batch++) {
      const points: PointRecord[] = [];
      const n = 1 + Math.floor(random() * 80);
      for (let i = 0; i < n; i++) {
        const id = ids[Math.floor(random() * ids.length)]!;
        // Mostly recent (appending), some late by up to 3 days, some exact overwrites.
        const existing = [...model.get(id)!.keys()];
        let time: number;
        const r = random();
        if (r < 0.1 && existing.length > 0) time = existing[Math.floor(random() * existing.length)]!;
        else if (r < 0.3) time = T0 + Math.floor(random() * 3 * DAY);
        else time = T0 + batch * 70 * MIN + Math.floor(random() * 70 * MIN);
        let p: StoredValue;
        if (id === 'r.counter') {
          counter = random() < 0.03 ? Math.floor(random() * 10) : counter + Math.floor(random() * 7);
          p = { t: time, v: counter };
        } else if (random() < 0.05) p = { t: time, v: null, q: 'bad' };
        else p = { t: time, v: Math.round((random() * 200 - 100) * 100) / 100 };
        points.push({ id, ...p });
        model.get(id)!.set(time, p);
      }
      await store.write(points);
    }
    const check = async (label: string): Promise<void> => {
      let compared = 0;
      for (const id of ids) {
        for (const interval of [MIN, 15 * MIN, HOUR, 2 * HOUR, DAY]) {
          for (const agg of ['avg', 'min', 'max', 'sum', 'first', 'last', 'count', 'delta'] as Aggregation[]) {
            const from = T0 + 5 * HOUR + 7 * MIN;
            const to = T0 + 3 * DAY;
            const want = reference(model.get(id)!, from, to, interval, agg);
            const got = await store.queryAggregate(id, { from, to, interval, agg });
            const same = got.length === want.length && got.every((g, i) => g.t === want[i]!.t && g.count === want[i]!.count && close(g.v, want[i]!.v));
            if (!same) {
              t.fail(`${label}: ${id} ${agg} per ${interval / MIN} min differs`, {
                got: got.slice(0, 5),
                want: want.slice(0, 5),
                lengths: [got.length, want.length],
              });
              return;
            }
            compared += got.length;
          }
        }
      }
      t.ok(compared > 1000, `${label}: ${compared} intervals equal the reference`);
    };
    await check('fresh');
    const raw = await store.query('r.one', { limit: MAX_QUERY_LIMIT });
    t.same(
      raw.map((p) => p.t),
      [...model.get('r.one')!.keys()].sort((a, b) => a - b),
      'raw points equal the model',
    );
    if (h.reopen) {
      store = await h.reopen(store);
      await check('after restart');
      // Writes after a restart (cold caches) must still merge into the stored buckets.
      const late: PointRecord[] = [];
      for (let i = 0; i < 200; i++) {
        const time = T0 + Math.floor(random() * 3 * DAY);
        const p = { t: time, v: Math.round(random() * 1000) / 10 };
        late.push({ id: 'r.one', ...p });
        model.get('r.one')!.set(time, p);
      }
      await store.write(late);
      await check('after restart and late writes');
    }
    await store.close();
  });

  t.test(`${name}: re-importing a file (every point overwritten in big batches) gives the reference aggregates`, async (t) => {
    const h = await makeHarness(t);
    const store = await h.open();
    const random = rng(0xf11e);
    const model = new Map<number, StoredValue>();
    // Two days of 15 min trend data with a few gaps, imported in batches of 500, then again
    // with other values (a corrected file), then a third time unchanged.
    const times = Array.from({ length: 192 }, (_, i) => T0 + i * 15 * MIN).filter(() => random() > 0.05);
    for (const round of [0, 1, 1]) {
      const points: PointRecord[] = times.map((time, i) => ({ id: 're.import', t: time, v: round === 0 ? i : Math.round(random() * 1e4) / 100 }));
      if (round === 1 && model.size > 0 && points.length > 0) points[3] = { id: 're.import', t: points[3]!.t, v: null, q: 'bad' };
      for (let i = 0; i < points.length; i += 500) await store.write(points.slice(i, i + 500));
      for (const p of points) model.set(p.t, p.q ? { t: p.t, v: p.v, q: p.q } : { t: p.t, v: p.v });
    }
    let compared = 0;
    for (const interval of [15 * MIN, HOUR, 6 * HOUR, DAY]) {
      for (const agg of ['avg', 'min', 'max', 'sum', 'first', 'last', 'count', 'delta'] as Aggregation[]) {
        const want = reference(model, T0, T0 + 2 * DAY, interval, agg);
        const got = await store.queryAggregate('re.import', { from: T0, to: T0 + 2 * DAY, interval, agg });
        t.ok(
          got.length === want.length && got.every((g, i) => g.t === want[i]!.t && g.count === want[i]!.count && close(g.v, want[i]!.v)),
          `${agg} per ${interval / MIN} min`,
          { got: got.slice(0, 3), want: want.slice(0, 3) },
        );
        compared += got.length;
      }
    }
    t.ok(compared > 300, `${compared} intervals compared`);
    await store.close();
  });

  t.test(`${name}: survives a restart`, async (t) => {
    const h = await makeHarness(t);
    if (!h.reopen) {
      t.pass('store is not persistent');
      return;
    }
    let store = await h.open();
    await store.putDatapoint(dp('p.one'));
    await store.write([
      { id: 'p.one', t: T0, v: 1 },
      { id: 'p.one', t: T0 + 1000, v: 2 },
      { id: 'unregistered', t: T0 + 5, v: 'x' },
    ]);
    await store.ackOutbox(1);
    store = await h.reopen(store);
    t.same(await store.query('p.one'), [
      { t: T0, v: 1 },
      { t: T0 + 1000, v: 2 },
    ]);
    t.same(store.latest('p.one'), { t: T0 + 1000, v: 2 }, 'latest restored');
    t.same(store.latest('unregistered'), { t: T0 + 5, v: 'x' }, 'latest restored for series without metadata too');
    t.same(
      (await store.listDatapoints()).map((d) => d.id),
      ['p.one'],
    );
    t.same([store.stats().lastSeq, store.stats().ackedSeq], [3, 1], 'outbox marks restored');
    await store.write([{ id: 'p.one', t: T0 + 2000, v: 3 }]);
    t.same(
      (await store.readOutbox(0, 10)).map((r) => r.seq),
      [2, 3, 4],
      'numbering continues',
    );
    t.same(
      (await store.queryAggregate('p.one', { from: T0, to: T0 + HOUR, interval: HOUR, agg: 'sum' })).map((p) => p.v),
      [6],
    );
    await store.close();
  });
}
