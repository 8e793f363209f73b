/**
 * The PostgreSQL store (central/store/postgres.ts) on a throwaway cluster of Debian's
 * PostgreSQL (test/helpers/postgres.ts): the same contract suite as the embedded store, then
 * what matters for PostgreSQL — two pools taking the same seqs at once, weeks without a
 * partition, the rollups against a brute-force reference before and after the refresh,
 * migrations run by several processes at once, the password kept out of errors and logs, a
 * server restart (read-only, then ok by itself), and the insert rate (printed, not asserted).
 */
import t, { type Test } from 'tap';
import { Writable } from 'node:stream';
import pgLib from 'pg';
import { pino } from 'pino';
import { isOutpostError } from '../../core/errors.js';
import type { IngestRecord, Receipt } from '../../central/store/contract.js';
import { PostgresCentralStore, type PostgresCentralStoreOptions } from '../../central/store/postgres.js';
import { partitionSuffix, weekStart } from '../../central/store/postgres/partitions.js';
import { LOCK_GENERATION, LOCK_NAMESPACE } from '../../central/store/postgres/schema.js';
import { MemoryStore } from '../../storage/memory-store.js';
import { AGGREGATIONS, type AggregateQuery } from '../../storage/rollups.js';
import { eventually } from '../helpers/gateway.js';
import { frozenLink } from '../helpers/frozen-link.js';
import { postgresSkip, psql, startThrowawayPostgres, type ThrowawayPostgres } from '../helpers/postgres.js';
import { mulberry32 } from '../helpers/rng.js';
import { centralStoreContract, databaseHarness } from './store-contract.js';

const GW = 'site-042';
const T0 = Date.UTC(2025, 2, 3, 10);
const rx = (at: number, over: Partial<Receipt> = {}): Receipt => ({ via: 'mqtt', lane: 'history', at, ...over });

async function rejectsWith(t: Test, p: Promise<unknown>, code: string, what: string): Promise<Error | undefined> {
  try {
    await p;
    t.fail(`${what}: expected ${code}`);
    return undefined;
  } catch (err) {
    t.ok(isOutpostError(err, code as never), `${what}: ${code}`, { found: err });
    return err as Error;
  }
}

t.test('the PostgreSQL store', postgresSkip(), async (t) => {
  const pg = await startThrowawayPostgres(t);
  let databases = 0;
  const freshDatabase = () => pg.createDatabase(`outpost_${++databases}`);
  const openStore = async (t: Test, url: string, options: Partial<PostgresCentralStoreOptions> = {}) => {
    const store = new PostgresCentralStore({ url, refreshMs: 100, ...options });
    await store.open();
    t.teardown(() => store.close());
    return store;
  };

  t.test('the store contract (test/central/store-contract.ts), rollups refreshed every 100 ms meanwhile', async (t) => {
    centralStoreContract(
      t,
      databaseHarness(freshDatabase, (t, url) => openStore(t, url)),
    );
  });

  t.test('two stores (two pools, as two central processes) taking the same seqs at once store each once, with its own copy', async (t) => {
    const url = await freshDatabase();
    const a = await openStore(t, url);
    const b = await openStore(t, url);
    // Writer i sends seqs [1 + 50 i, 300 + 50 i], values tagged with i: a stored reading says which copy won.
    const batch = (i: number): IngestRecord[] =>
      Array.from({ length: 300 }, (_, k) => {
        const seq = 1 + 50 * i + k;
        return { seq, id: `dp.${seq % 3}`, t: T0 + seq * 1000, v: seq * 100 + i };
      });
    const writers = Array.from({ length: 12 }, (_, i) => i);
    const results = await Promise.all(writers.map((i) => (i % 2 ? a : b).insertReadings(GW, batch(i), rx(T0 + i))));
    const distinct = 300 + 50 * 11;
    t.equal(
      results.reduce((n, r) => n + r.stored, 0),
      distinct,
      `seqs 1..${distinct} stored once among twelve writers on two pools`,
    );
    t.equal(
      results.reduce((n, r) => n + r.duplicates, 0),
      12 * 300 - distinct,
    );
    t.equal(await a.countSeqs(GW), distinct);
    t.equal(await b.countReadings(GW), distinct);
    const perWriter = new Map<number, number>();
    for (const id of ['dp.0', 'dp.1', 'dp.2'])
      for (const v of await a.query(GW, id, { from: T0, to: T0 + 10_000_000, limit: 100_000 })) {
        const tag = (v.v as number) % 100;
        perWriter.set(tag, (perWriter.get(tag) ?? 0) + 1);
      }
    t.same(
      writers.map((i) => perWriter.get(i) ?? 0),
      results.map((r) => r.stored),
      'each writer stored exactly the readings of the seqs it claimed',
    );
    t.same(
      (await b.datapoints(GW)).map((d) => d.id),
      ['dp.0', 'dp.1', 'dp.2'],
      'datapoints registered once though both pools met them at the same time',
    );
  });

  t.test('a reading for a week with no partition is stored (created on demand), also after an operator dropped it', async (t) => {
    const url = await freshDatabase();
    const store = await openStore(t, url);
    const future = Date.UTC(2031, 6, 15, 12);
    const past = Date.UTC(1999, 0, 6, 3, 4, 5, 678);
    const name = (at: number) => `outpost.readings_${partitionSuffix(weekStart(at))}`;
    t.equal(await psql(url, `SELECT to_regclass('${name(future)}') IS NULL`), 't', 'no partition for 2031 yet');
    t.same(
      await store.insertReadings(
        GW,
        [
          { seq: 1, id: 'x', t: future, v: 1 },
          { seq: 2, id: 'x', t: past, v: 2 },
        ],
        rx(T0),
      ),
      { stored: 2, duplicates: 0 },
    );
    t.equal(await psql(url, `SELECT count(*) FROM ${name(future)}`), '1', 'the 2031 reading is in its week');
    t.equal(await psql(url, `SELECT count(*) FROM ${name(past)}`), '1', 'the 1999 reading in its week');
    t.equal(name(past), 'outpost.readings_p19990104', 'named by the Monday of its ISO week');
    t.same(await store.query(GW, 'x', { from: past, to: past }), [{ t: past, v: 2 }], 'to the millisecond');
    await psql(url, `ALTER TABLE outpost.readings DETACH PARTITION ${name(past)}; DROP TABLE ${name(past)}`);
    t.same(await store.insertReadings(GW, [{ seq: 3, id: 'x', t: past + 1000, v: 3 }], rx(T0 + 1)), { stored: 1, duplicates: 0 }, 'the week is made again');
    t.same(await store.query(GW, 'x', { from: past, to: past + 1000 }), [{ t: past + 1000, v: 3 }]);
    const other = await openStore(t, url);
    t.same(
      await other.insertReadings(GW, [{ seq: 4, id: 'x', t: future + 1, v: 4 }], rx(T0 + 2)),
      { stored: 1, duplicates: 0 },
      'another process finds it made',
    );
    t.same(
      await store.queryAggregate(GW, 'x', { from: future - 3_600_000, to: future + 3_600_000, interval: 3_600_000, agg: 'count' }),
      [{ t: future, v: 2, count: 2 }],
      'aggregates there too (rollup partitions come with the week)',
    );
  });

  t.test('aggregates equal a brute-force reference: before the refresh, after it, and with new writes over refreshed buckets', async (t) => {
    const url = await freshDatabase();
    const store = await openStore(t, url, { refreshMs: 0 });
    const reference = new MemoryStore();
    await reference.open();
    const random = mulberry32(25);
    let seq = 0;
    const all: IngestRecord[] = [];
    // A counter with resets, irregular spacing and sub-second times; a pump with booleans, numbers, strings and bad readings.
    let at = T0 - 3 * 3_600_000 + 137;
    let counter = 0;
    while (at < T0 + 26 * 3_600_000) {
      at += 1000 + Math.floor(random() * 170_000);
      counter = random() < 0.01 ? Math.floor(random() * 8) * 0.25 : counter + Math.floor(random() * 9) * 0.25;
      all.push({ seq: ++seq, id: 'meter.energy', t: at, v: counter });
      const r = random();
      const v = r < 0.45 ? r < 0.2 : r < 0.9 ? Math.floor(random() * 40) * 0.5 : r < 0.95 ? 'fault' : null;
      all.push(v === null ? { seq: ++seq, id: 'pump.state', t: at + 250, v, q: 'bad' } : { seq: ++seq, id: 'pump.state', t: at + 250, v });
    }
    const write = async (records: IngestRecord[]) => {
      for (let i = 0; i < records.length; i += 500) await store.insertReadings(GW, records.slice(i, i + 500), rx(T0));
      await reference.write(records.map((r) => (r.q ? { id: r.id, t: r.t, v: r.v, q: r.q } : { id: r.id, t: r.t, v: r.v })));
    };
    await write(all);
    const end = all[all.length - 1]!.t;
    const windows = [
      { from: T0 - 86_400_000, to: end + 86_400_000 },
      { from: T0 + 7 * 3_600_000 + 13 * 60_000 + 5, to: T0 + 21 * 3_600_000 - 1 },
      { from: T0 + 20 * 3_600_000, to: T0 + 20 * 3_600_000 + 59_999 },
    ];
    const intervals = [60_000, 5 * 60_000, 15 * 60_000, 3_600_000, 86_400_000];
    const compare = async (phase: string) => {
      const differences: unknown[] = [];
      let queries = 0;
      for (const id of ['meter.energy', 'pump.state'])
        for (const w of windows)
          for (const interval of intervals)
            for (const agg of AGGREGATIONS) {
              const q: AggregateQuery = { ...w, interval, agg };
              const [got, want] = [await store.queryAggregate(GW, id, q), await reference.queryAggregate(id, q)];
              queries++;
              if (JSON.stringify(got) !== JSON.stringify(want)) differences.push({ id, ...q, got: got.slice(0, 3), want: want.slice(0, 3) });
            }
      t.same(differences.slice(0, 3), [], `${phase}: ${queries} queries answer as the reference`);
    };
    await compare('nothing refreshed yet (all from raw)');
    t.ok((await store.refreshRollups()) > 0, 'the refresh took the dirty minutes');
    t.equal(await psql(url, 'SELECT count(*) FROM outpost.rollup_dirty'), '0', 'nothing dirty after it');
    t.ok(Number(await psql(url, 'SELECT count(*) FROM outpost.rollup_1d')) >= 2, 'day buckets stored');
    await compare('refreshed');
    // New seqs over refreshed buckets: values replaced at stored times (one number by a string:
    // its minute may lose its only number), and readings between the stored ones.
    const changes: IngestRecord[] = [];
    for (let i = 0; i < all.length; i += 37) {
      const old = all[i]!;
      changes.push({ seq: ++seq, id: old.id, t: old.t, v: i % 2 ? 'replaced' : typeof old.v === 'number' ? old.v + 100 : 3 });
      changes.push({ seq: ++seq, id: 'meter.energy', t: old.t + 3, v: Math.floor(random() * 400) * 0.25 });
    }
    await write(changes);
    await compare('new writes over refreshed buckets');
    await store.refreshRollups();
    await compare('refreshed again');
    const emptied = await psql(
      url,
      `SELECT count(*) FROM outpost.rollup_1m WHERE series = (SELECT series FROM outpost.datapoints WHERE id = 'pump.state') AND count = 0`,
    );
    t.equal(emptied, '0', 'no empty buckets kept');
  });

  t.test('newest readings: exact before the refresh, moved into datapoints by it, exact again after new writes; COPY on the usual path', async (t) => {
    const url = await freshDatabase();
    const store = await openStore(t, url, { refreshMs: 0 });
    const newest = async () => Object.fromEntries((await store.datapoints(GW)).map((d) => [d.id, d.latest]));
    const stored = () => psql(url, "SELECT string_agg(id || '=' || coalesce(latest_v::text, latest_j::text, '-'), ',' ORDER BY id) FROM outpost.datapoints");
    let seq = 0;
    const write = (records: Array<Omit<IngestRecord, 'seq'>>, withSeqs = true) =>
      store.insertReadings(
        GW,
        records.map((r) => (withSeqs ? { seq: ++seq, ...r } : r)),
        rx(T0),
      );

    await write([
      { id: 'a', t: T0, v: 1 },
      { id: 'a', t: T0 + 90_000, v: 2 },
      { id: 'b', t: T0, v: 'open' },
    ]);
    t.same(store.writePaths, { copy: 1, merge: 0, copyRefused: 0, mergeRetried: 0 }, 'fresh seqs: written by COPY');
    t.same(await newest(), { a: { t: T0 + 90_000, v: 2 }, b: { t: T0, v: 'open' } }, 'newest from the dirty minutes before any refresh');
    t.equal(await stored(), 'a=-,b=-', 'nothing in the datapoint rows yet: no insert updates them');

    await store.refreshRollups();
    t.equal(await stored(), 'a=2,b="open"', 'the refresh moved the newest readings into the datapoint rows');
    t.equal(await psql(url, 'SELECT count(*) FROM outpost.rollup_dirty'), '0');
    t.same(await newest(), { a: { t: T0 + 90_000, v: 2 }, b: { t: T0, v: 'open' } }, 'the same answer from the rows');

    await write([{ id: 'a', t: T0 + 30_000, v: 9 }]);
    t.same(await store.latest(GW, 'a'), { t: T0 + 90_000, v: 2 }, 'a backfilled older reading does not become the newest');
    await write([{ id: 'b', t: T0 + 600_000, v: true, q: 'stale' }]);
    t.same(await store.latest(GW, 'b'), { t: T0 + 600_000, v: true, q: 'stale' }, 'a newer one is the newest before the refresh');
    await write([{ id: 'a', t: T0 + 90_000, v: 7 }]);
    t.same(store.writePaths.copyRefused, 1, 'a fresh seq at a stored (series, t): COPY refused…');
    t.same(await store.latest(GW, 'a'), { t: T0 + 90_000, v: 7 }, '…and the merge path replaced the value, which is the newest at once');
    await write([{ id: 'a', t: T0 + 120_000, v: 8 }], false);
    t.same(await store.latest(GW, 'a'), { t: T0 + 120_000, v: 8 }, 'a record without a seq goes the merge path');
    t.same(store.writePaths, { copy: 3, merge: 2, copyRefused: 1, mergeRetried: 0 });

    await store.refreshRollups();
    t.equal(await stored(), 'a=8,b=true', 'refreshed again');
    t.same(await newest(), { a: { t: T0 + 120_000, v: 8 }, b: { t: T0 + 600_000, v: true, q: 'stale' } });
    const again = await store.insertReadings(GW, [{ seq: 1, id: 'a', t: T0, v: 1 }], rx(T0));
    t.same(again, { stored: 0, duplicates: 1 }, 'a stored seq again: a duplicate, through the merge path');
    t.same(store.writePaths, { copy: 3, merge: 3, copyRefused: 2, mergeRetried: 0 });
  });

  t.test('binary COPY: PostgreSQL reads every time and value as sent, from the first millisecond to the last one a key holds', async (t) => {
    const url = await freshDatabase();
    const store = await openStore(t, url, { refreshMs: 0 });
    // Times on both sides of PostgreSQL's epoch (2000-01-01), past 2^53 microseconds from it
    // (year 2285: a double no longer holds them exactly), and the largest time the contract allows.
    const times = [
      0,
      1,
      Date.UTC(1999, 11, 31, 23, 59, 59, 999),
      Date.UTC(2000, 0, 1),
      Date.UTC(2000, 0, 1, 0, 0, 0, 1),
      T0 + 123,
      Date.UTC(2286, 0, 1, 0, 0, 0, 7),
      Date.UTC(12000, 0, 1, 0, 0, 0, 1),
      999_999_999_999_999,
    ];
    const values: IngestRecord['v'][] = [-0, 5e-324, -1.7976931348623157e308, 0.1 + 0.2, 'ünïcödé ⚡\t\\N', { deep: [1, 'two', null] }, true, null, 42];
    const sent: IngestRecord[] = times.map((t, k) => ({ seq: k + 1, id: 'edge', t, v: values[k]!, ...(values[k] === null ? { q: 'bad' as const } : {}) }));
    t.same(await store.insertReadings(GW, sent, rx(T0)), { stored: sent.length, duplicates: 0 });
    t.same(store.writePaths, { copy: 1, merge: 0, copyRefused: 0, mergeRetried: 0 }, 'all of it through COPY');
    const rows = await psql(
      url,
      "SELECT (extract(epoch FROM t) * 1000)::bigint || ' ' || coalesce(v::text, j::text, '-') || ' ' || coalesce(q, '-') FROM outpost.readings ORDER BY t",
    );
    const printed = [
      '-0',
      '5e-324',
      '-1.7976931348623157e+308',
      '0.30000000000000004',
      '"ünïcödé ⚡\\t\\\\N"',
      '{"deep": [1, "two", null]}',
      'true',
      '-',
      '42',
    ];
    const expected = sent.map((r, k) => `${r.t} ${printed[k]} ${r.q ?? '-'}`);
    t.same(rows.split('\n'), expected, 'times to the millisecond and values as PostgreSQL itself prints them');
    t.same(
      (await store.query(GW, 'edge', { from: 0, to: 999_999_999_999_999 })).map((r) => r.t),
      times,
      'and the store reads them back, the last one asked for by its own time',
    );
    t.equal(await psql(url, "SELECT string_agg(gateway || '/' || seq, ',' ORDER BY seq) FROM outpost.seqs"), sent.map((r) => `${GW}/${r.seq}`).join(','));
    t.equal(
      await psql(
        url,
        "SELECT count(*) || '/' || min(extract(epoch FROM minute) * 1000)::bigint || '/' || max(extract(epoch FROM minute) * 1000)::bigint FROM outpost.rollup_dirty",
      ),
      `${times.length - 2}/0/${999_999_999_999_999 - (999_999_999_999_999 % 60_000)}`,
      'a dirty minute per minute (two pairs of readings share one), from the epoch to the last minute exactly',
    );
    // Written again without a seq (the merge path, `to_timestamp`): each is the same (series, t)
    // and replaces the value rather than adding a reading a few µs away.
    await store.insertReadings(
      GW,
      times.map((t) => ({ id: 'edge', t, v: 1 })),
      rx(T0),
    );
    t.equal(await psql(url, "SELECT count(*) || '/' || sum(v) FROM outpost.readings"), `${times.length}/${times.length}`, 'the merge path meets every one');
  });

  t.test('dirty minutes: once per (series, minute) and generation; the refresh waits for inserts of the old generation', async (t) => {
    const url = await freshDatabase();
    const store = await openStore(t, url, { refreshMs: 0 });
    const dirty = () => psql(url, 'SELECT count(*) || ' + "'/'" + ' || count(DISTINCT generation) FROM outpost.rollup_dirty');
    let seq = 0;
    // A meter read every 10 s, each reading its own commit: six commits in one minute.
    for (let k = 0; k < 6; k++) await store.insertReadings(GW, [{ seq: ++seq, id: 'meter', t: T0 + k * 10_000, v: k }], rx(T0));
    t.equal(await dirty(), '1/1', 'six commits in one minute: one dirty entry');
    await store.insertReadings(GW, [{ seq: ++seq, id: 'meter', t: T0 + 60_000, v: 6 }], rx(T0));
    await store.insertReadings(GW, [{ seq: ++seq, id: 'meter', t: T0 - 60_000, v: -1 }], rx(T0));
    t.equal(await dirty(), '3/1', 'the next minute and an older one: an entry each');

    // An insert of the current generation in flight (its shared lock held by hand): the refresh
    // must not claim until it ends.
    const holder = new pgLib.Client({ connectionString: url });
    await holder.connect();
    t.teardown(() => holder.end());
    await holder.query('BEGIN');
    await holder.query('SELECT pg_advisory_xact_lock_shared($1, $2)', [LOCK_NAMESPACE, LOCK_GENERATION]);
    let refreshed: number | undefined;
    const refresh = store.refreshRollups().then((n) => (refreshed = n));
    await new Promise((r) => setTimeout(r, 500));
    t.equal(refreshed, undefined, 'the refresh waits for the insert holding the old generation');
    await holder.query('COMMIT');
    await refresh;
    t.equal(refreshed, 3, 'then claims the three entries');
    t.equal(await dirty(), '0/0');

    await store.insertReadings(GW, [{ seq: ++seq, id: 'meter', t: T0 + 50_000, v: 50 }], rx(T0));
    t.equal(await dirty(), '1/1', 'a minute refreshed before is written again in the new generation');
    const max = async () => (await store.queryAggregate(GW, 'meter', { from: T0, to: T0 + 59_999, interval: 60_000, agg: 'max' })).map((a) => [a.t, a.v]);
    t.same(await max(), [[T0, 50]], 'and its aggregate is exact');
    await store.refreshRollups();
    t.same(await max(), [[T0, 50]], 'after the refresh too');

    // The other way round: a bump of the generation in flight (the refresh's exclusive lock held
    // by hand). An insert waits for it and must then read the new generation: its entry would
    // otherwise look old to the next refresh, be claimed while inserts of its generation run,
    // and the memo would leave out entries the refresh never sees.
    const before = Number(await psql(url, 'SELECT generation FROM outpost.rollup_generation'));
    await holder.query('BEGIN');
    await holder.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_NAMESPACE, LOCK_GENERATION]);
    await holder.query('UPDATE outpost.rollup_generation SET generation = generation + 1');
    let inserted = false;
    const insert = store.insertReadings(GW, [{ seq: ++seq, id: 'meter', t: T0 + 120_000, v: 7 }], rx(T0)).then(() => (inserted = true));
    // Until the insert is seen waiting for the generation lock (not granted), so the test cannot
    // pass by committing the bump before the insert got there.
    await eventually(async () => (await psql(url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")) === '1', 10_000, 20);
    t.notOk(inserted, 'the insert waits for the bump');
    await holder.query('COMMIT');
    await insert;
    t.equal(
      await psql(url, "SELECT string_agg(DISTINCT generation::text, ',') FROM outpost.rollup_dirty"),
      String(before + 1),
      'and writes its entry in the new generation',
    );
  });

  t.test('migrations: three stores opening one new database at once, then one more; a newer schema refused', async (t) => {
    const url = await freshDatabase();
    const stores = [0, 1, 2].map(() => new PostgresCentralStore({ url, refreshMs: 0 }));
    await Promise.all(stores.map((s) => s.open()));
    for (const s of stores) t.teardown(() => s.close());
    t.equal(await psql(url, "SELECT string_agg(version::text, ',' ORDER BY version) FROM outpost.outpost_schema"), '1,2,3,4', 'migrations 1 to 4 applied once');
    t.equal(await psql(url, "SELECT value FROM outpost.settings WHERE name = 'layout'"), 'partitioned', 'plain PostgreSQL: our partitions');
    const results = await Promise.all(stores.map((s, i) => s.insertReadings(GW, [{ seq: 1, id: 'a', t: T0, v: i }], rx(T0))));
    t.equal(
      results.reduce((n, r) => n + r.stored, 0),
      1,
    );
    const late = await openStore(t, url);
    t.equal(await late.countSeqs(GW), 1, 'a later process opens the migrated database');
    await psql(url, "INSERT INTO outpost.outpost_schema (version, description) VALUES (99, 'from the future')");
    const old = new PostgresCentralStore({ url });
    const err = await rejectsWith(t, old.open(), 'STORAGE_OPEN_FAILED', 'an older Outpost on a newer schema');
    t.match(err?.message, /version 99, newer than this Outpost Central knows \(4\)/);
  });

  t.test('migration 4: the seqs of a database at version 3 become runs, each seq still stored once', async (t) => {
    const url = await freshDatabase();
    const first = await openStore(t, url, { refreshMs: 0 });
    const seqs = (from: number, to: number, id = 'a'): IngestRecord[] =>
      Array.from({ length: to - from + 1 }, (_, k) => ({ seq: from + k, id, t: T0 + (from + k) * 1000, v: from + k }));
    await first.insertReadings(GW, [...seqs(1, 40), ...seqs(45, 45), ...seqs(50, 60)], rx(T0));
    await first.insertReadings('site-007', seqs(3, 5), rx(T0));
    await first.close();
    // The database as version 3 left it: a row per seq, no runs.
    await psql(
      url,
      `DROP VIEW outpost.seqs;
       CREATE TABLE outpost.seqs (gateway text NOT NULL, seq bigint NOT NULL, PRIMARY KEY (gateway, seq));
       INSERT INTO outpost.seqs SELECT gateway, generate_series(first_seq, last_seq) FROM outpost.seq_runs;
       DROP TABLE outpost.seq_runs;
       DELETE FROM outpost.outpost_schema WHERE version = 4;`,
    );
    t.equal(await psql(url, 'SELECT count(*) FROM outpost.seqs'), '55', 'version 3: 55 seq rows');
    const store = await openStore(t, url, { refreshMs: 0 });
    t.equal(
      await psql(url, "SELECT string_agg(gateway || ':' || first_seq || '-' || last_seq, ' ' ORDER BY gateway, first_seq) FROM outpost.seq_runs"),
      `site-007:3-5 ${GW}:1-40 ${GW}:45-45 ${GW}:50-60`,
      'the runs of the stored seqs',
    );
    t.equal(await psql(url, 'SELECT count(*) FROM outpost.seqs'), '55', 'the seqs view shows the same 55');
    t.equal(await store.countSeqs(GW), 52);
    t.same(
      await store.insertReadings(GW, seqs(38, 52, 'b'), rx(T0 + 1)),
      { stored: 8, duplicates: 7 },
      'seqs 38-40, 45 and 50-52 stored before: duplicates; the 8 between them new',
    );
    t.equal(
      await psql(url, "SELECT string_agg(first_seq || '-' || last_seq, ' ' ORDER BY first_seq) FROM outpost.seq_runs WHERE gateway = 'site-042'"),
      '1-40 41-44 45-45 46-49 50-60',
    );
  });

  t.test('a store opened on a database the fleet wrote knows its datapoints at open, before its first batch', async (t) => {
    const url = await freshDatabase();
    const first = await openStore(t, url, { refreshMs: 0 });
    const ids = ['a', 'b', 'c.d'];
    await first.insertReadings(
      GW,
      ids.map((id, k) => ({ seq: k + 1, id, t: T0, v: k })),
      rx(T0),
    );
    await first.insertReadings('site-007', [{ seq: 1, id: 'a', t: T0, v: 1 }], rx(T0));
    t.equal(first.knownDatapoints, 4, 'the writer knows what it registered');
    await first.close();
    const again = await openStore(t, url, { refreshMs: 0 });
    t.equal(again.knownDatapoints, 4, 'read at open');
    t.same(
      await again.insertReadings(
        GW,
        ids.map((id, k) => ({ seq: k + 10, id, t: T0 + 1000, v: k })),
        rx(T0),
      ),
      { stored: 3, duplicates: 0 },
    );
    t.equal(again.knownDatapoints, 4, 'and goes on with the same series');
  });

  t.test("a fleet reconnecting: its statuses commit in a few transactions, each gateway's merged as if one after the other", async (t) => {
    const url = await freshDatabase();
    const a = await openStore(t, url, { refreshMs: 0 });
    const b = await openStore(t, url, { refreshMs: 0 });
    const gateways = Array.from({ length: 300 }, (_, g) => `site-${String(g).padStart(3, '0')}`);
    const [S1, S2] = [T0, T0 + 60_000];
    // Each gateway's online of a new session and the will of its old one, through two stores (two
    // central processes) at once, in either order.
    await Promise.all(
      gateways.flatMap((gw, g) => [
        (g % 2 ? a : b).recordStatus(gw, { at: T0 + 100, via: 'mqtt', state: 'online', since: S2, session: S2 }),
        (g % 2 ? b : a).recordStatus(gw, { at: T0 + 101, via: 'mqtt', state: 'offline', session: S1 }),
      ]),
    );
    // Then a storage report of each: it keeps the connection part.
    await Promise.all(
      gateways.map((gw) => a.recordStatus(gw, { at: T0 + 102, via: 'http', storage: { state: 'read-only', error: 'ENOSPC', since: T0 + 90 } })),
    );
    const transactions = a.statusTransactions + b.statusTransactions;
    t.ok(transactions <= 12, `${transactions} transactions for ${3 * gateways.length} statuses`);
    const states = new Map((await b.gatewayStates()).map((s) => [s.id, s.status]));
    const wrong = gateways.filter((gw) => {
      const s = states.get(gw);
      return s?.state !== 'online' || s.session !== S2 || s.storage?.state !== 'read-only' || s.at !== T0 + 102;
    });
    t.same(wrong, [], 'every gateway online in its new session, its storage report kept');

    // A gateway id the store refuses and a status PostgreSQL refuses (jsonb takes no \u0000)
    // among good ones: each fails alone.
    const late = { at: T0 + 200, via: 'mqtt' as const, state: 'offline' as const, session: S2 };
    const good = gateways.slice(0, 20).map((gw) => a.recordStatus(gw, late));
    const badId = a.recordStatus('Site 7', late);
    const refused = a.recordStatus('site-refused', { at: T0 + 200, via: 'http', storage: { state: 'read-only', error: 'nul \u0000', since: T0 } });
    await rejectsWith(t, badId, 'CENTRAL_RECORD_INVALID', 'a bad gateway id');
    await t.rejects(refused, 'the status PostgreSQL refuses fails');
    await Promise.all(good);
    const after = new Map((await b.gatewayStates()).map((s) => [s.id, s.status]));
    t.same(
      gateways.slice(0, 20).filter((gw) => after.get(gw)?.state !== 'offline'),
      [],
      'the good statuses of its group committed',
    );
    t.notOk(after.has('site-refused'), 'the refused status left nothing');
  });

  t.test("ingest has connections of its own: readings commit while every one of the API's waits", async (t) => {
    const url = await freshDatabase();
    const store = await openStore(t, url, { refreshMs: 0, poolSize: 2 });
    await store.insertReadings(GW, [{ seq: 1, id: 'a', t: T0, v: 1 }], rx(T0));
    // Slow API reads (fleet summaries take a second at 1,000 gateways): here, reads of the
    // statuses held behind a lock, on both of the pool's connections.
    const locker = new pgLib.Client({ connectionString: url });
    await locker.connect();
    t.teardown(() => locker.end());
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE outpost.statuses IN ACCESS EXCLUSIVE MODE');
    const reads = [store.gatewayStates(), store.gatewayStates()];
    const watcher = new pgLib.Client({ connectionString: url });
    await watcher.connect();
    t.teardown(() => watcher.end());
    await eventually(async () => {
      // On a connection of its own: pg_stat_activity is read once per transaction.
      const { rows } = await watcher.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'outpost-central' AND wait_event_type = 'Lock'",
      );
      return Number(rows[0]!.n) === 2;
    });
    const outcome = await Promise.race([
      store.insertReadings(GW, [{ seq: 2, id: 'a', t: T0 + 1000, v: 2 }], rx(T0 + 1)).then(
        (r) => `stored ${r.stored}`,
        (err: Error) => `failed: ${err.message}`,
      ),
      new Promise<string>((resolve) => setTimeout(() => resolve('still waiting after 15 s'), 15_000)),
    ]);
    t.equal(outcome, 'stored 1', 'the readings committed meanwhile');
    const oldWeek = Date.UTC(2020, 0, 8);
    t.same(
      await store.insertReadings(GW, [{ seq: 3, id: 'a', t: oldWeek, v: 3 }], rx(T0 + 2)),
      { stored: 1, duplicates: 0 },
      'and a reading of a week with no partition yet (made on ingest connections too)',
    );
    // Another read and a write of the API pool wait for a connection past the pool's 5 s: busy,
    // retry later — not the database gone, which would make the store read-only and stop ingest.
    await rejectsWith(t, store.gatewayStates(), 'CENTRAL_BUSY', 'a third read');
    await rejectsWith(t, store.compactSeqRuns(), 'CENTRAL_BUSY', 'maintenance on the API pool');
    t.same(store.health(), { state: 'ok' }, 'the store stays writable');
    t.same(await store.insertReadings(GW, [{ seq: 4, id: 'a', t: T0 + 2000, v: 4 }], rx(T0 + 3)), { stored: 1, duplicates: 0 });
    await locker.query('COMMIT');
    t.equal((await Promise.all(reads)).length, 2, 'the reads answer once the lock is gone');
    t.equal(await store.countSeqs(GW), 4);
  });

  t.test('a merge that meets a run another transaction commits after its read runs again: each seq stored once', async (t) => {
    const url = await freshDatabase();
    const store = await openStore(t, url, { refreshMs: 0 });
    // Another receiver's transaction holds seqs 5-7 of the gateway, not committed yet.
    const other = new pgLib.Client({ connectionString: url });
    await other.connect();
    t.teardown(() => other.end());
    await other.query('BEGIN');
    await other.query(`INSERT INTO outpost.seq_runs (gateway, first_seq, last_seq) VALUES ($1, 5, 7)`, [GW]);
    // A record without a seq sends the batch down the merge path at once: it reads the stored
    // runs (5-7 is not committed: not among them), then waits on 5-7 as it writes 1-10.
    const batch: IngestRecord[] = [...Array.from({ length: 10 }, (_, k) => ({ seq: k + 1, id: 'a', t: T0 + k * 1000, v: k })), { id: 'b', t: T0, v: 1 }];
    const inserting = store.insertReadings(GW, batch, rx(T0));
    const watcher = new pgLib.Client({ connectionString: url });
    await watcher.connect();
    t.teardown(() => watcher.end());
    await eventually(
      async () => (await watcher.query("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted")).rows[0].n > 0,
      10_000,
      20,
    );
    await other.query('COMMIT');
    t.same(await inserting, { stored: 8, duplicates: 3 }, 'seqs 5-7 are the other transaction’s: duplicates here');
    t.equal(store.writePaths.mergeRetried, 1, 'the merge ran again after the exclusion constraint refused its run');
    t.equal(await psql(url, "SELECT string_agg(first_seq || '-' || last_seq, ' ' ORDER BY first_seq) FROM outpost.seq_runs"), '1-4 5-7 8-10');
    t.equal(await psql(url, 'SELECT count(*) FROM outpost.readings'), '8', 'readings of seqs 1-4 and 8-10, and the one without a seq');
  });

  t.test("seq runs: a gateway's adjacent runs joined into one, gaps kept, duplicates still found, inserts meanwhile", async (t) => {
    const url = await freshDatabase();
    const store = await openStore(t, url, { refreshMs: 0 });
    const batch = (from: number, to: number): IngestRecord[] =>
      Array.from({ length: to - from + 1 }, (_, k) => ({ seq: from + k, id: `dp.${(from + k) % 4}`, t: T0 + (from + k) * 1000, v: from + k }));
    // A transaction per batch, so a run per batch: A 1..300 whole; B 1..300 without 101..110.
    for (let b = 0; b < 30; b++) {
      await store.insertReadings('site-a', batch(1 + 10 * b, 10 + 10 * b), rx(T0));
      if (b !== 10) await store.insertReadings('site-b', batch(1 + 10 * b, 10 + 10 * b), rx(T0));
    }
    const runs = async (gw: string) => Number(await psql(url, `SELECT count(*) FROM outpost.seq_runs WHERE gateway = '${gw}'`));
    t.same([await runs('site-a'), await runs('site-b')], [30, 29], 'a run per transaction');
    const result = await store.compactSeqRuns();
    t.same(result, { gateways: 2, runsBefore: 59, runsAfter: 3 }, 'joined');
    t.same([await runs('site-a'), await runs('site-b')], [1, 2], "A's runs one, B's two around its gap");
    t.same([await store.countSeqs('site-a'), await store.countSeqs('site-b')], [300, 290], 'the same seqs stored');
    t.same(await store.insertReadings('site-b', batch(95, 115), rx(T0 + 1)), { stored: 10, duplicates: 11 }, "B's gap filled, the seqs around it duplicates");
    t.same(await store.insertReadings('site-a', batch(299, 301), rx(T0 + 1)), { stored: 1, duplicates: 2 }, 'duplicates found in a joined run');

    // Compaction while both gateways keep sending, some batches again: each seq still once.
    const writes: Array<Promise<{ stored: number; duplicates: number }>> = [];
    for (let b = 0; b < 20; b++) {
      writes.push(store.insertReadings('site-a', batch(302 + 5 * b, 306 + 5 * b), rx(T0 + 2)));
      writes.push(store.insertReadings('site-b', batch(296 + 5 * b, 300 + 5 * b), rx(T0 + 2)));
    }
    const [during, ...results] = await Promise.all([store.compactSeqRuns(), ...writes]);
    t.ok(during!.gateways === 2 && during!.runsBefore >= 5, 'a compaction ran meanwhile (at least the runs stored before it)', { during });
    const stored = (results as Array<{ stored: number }>).reduce((n, r) => n + r.stored, 0);
    t.equal(stored, 100 + 95, 'every new seq stored once, the repeated ones (296..300 of B) dropped');
    await store.compactSeqRuns();
    t.same([await runs('site-a'), await runs('site-b')], [1, 1], 'one run each once all arrived');
    t.same([await store.countSeqs('site-a'), await store.countSeqs('site-b')], [401, 395]);
    t.same([await store.countReadings('site-a'), await store.countReadings('site-b')], [401, 395], 'a reading per seq');
  });

  t.test('the password is in no error and no log line', async (t) => {
    const lines: string[] = [];
    const log = pino(
      { level: 'debug' },
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          lines.push(chunk.toString());
          cb();
        },
      }),
    );
    const secret = 'Pa55-w%2Frd-in-url';
    const withSecret = (u: string) => u.replace('outpost@', `outpost:${secret}@`);
    const missing = new PostgresCentralStore({ url: withSecret(pg.urlFor('no_such_database')), log });
    const err = await rejectsWith(t, missing.open(), 'STORAGE_OPEN_FAILED', 'a database that does not exist');
    t.match(
      err?.message,
      /PostgreSQL at postgres:\/\/outpost:\*\*\*@127\.0\.0\.1:\d+\/no_such_database: .*does not exist/,
      'names the server, not the password',
    );
    // The throwaway cluster trusts loopback: the password is sent to no one, but it is in the URL.
    const url = await freshDatabase();
    const store = await openStore(t, withSecret(url), { log });
    await store.insertReadings(GW, [{ seq: 1, id: 'a', t: T0, v: 1 }], rx(T0));
    t.equal(store.where.includes('***'), true);
    t.ok(lines.length > 0, 'it logged');
    t.notOk(
      lines.some((l) => l.includes('Pa55') || l.includes('w/rd')),
      'no log line holds the password',
    );
  });

  t.test('insert rate: 100,000 readings in 1,000-record batches from one store (printed, not asserted)', async (t) => {
    const url = await freshDatabase();
    const store = await openStore(t, url, { refreshMs: 0 });
    const batches = 100;
    const started = performance.now();
    for (let b = 0; b < batches; b++) {
      const records: IngestRecord[] = [];
      for (let k = 0; k < 1000; k++) {
        const n = b * 1000 + k;
        records.push({ seq: n + 1, id: `site.dp${String(n % 100).padStart(3, '0')}`, t: T0 + Math.floor(n / 100) * 10_000, v: (n % 977) * 0.5 });
      }
      await store.insertReadings(GW, records, rx(T0 + b, { via: 'http', key: `${GW}:${b * 1000 + 1}-${b * 1000 + 1000}` }));
    }
    const seconds = (performance.now() - started) / 1000;
    const refreshStarted = performance.now();
    const dirty = await store.refreshRollups();
    const refreshSeconds = (performance.now() - refreshStarted) / 1000;
    t.equal(await store.countReadings(GW), batches * 1000);
    t.comment(
      `PostgreSQL store: ${batches * 1000} readings in ${seconds.toFixed(2)} s = ${Math.round((batches * 1000) / seconds)} rows/s (1,000-record batches, one at a time, fsync on)`,
    );
    t.comment(`rollup refresh of those: ${dirty} dirty entries in ${refreshSeconds.toFixed(2)} s`);
  });

  // Last: it stops the cluster.
  t.test('the server restarts under the store: read-only while it is gone, ok again by itself, nothing lost', async (t) => {
    const url = await freshDatabase();
    const store = await openStore(t, url, { probeMs: 200 });
    const batch = (first: number) => Array.from({ length: 50 }, (_, i) => ({ seq: first + i, id: 'p', t: T0 + (first + i) * 1000, v: first + i }));
    t.same(await store.insertReadings(GW, batch(1), rx(T0)), { stored: 50, duplicates: 0 });
    await stopped(pg, async () => {
      await rejectsWith(t, store.insertReadings(GW, batch(51), rx(T0 + 1)), 'STORAGE_WRITE_FAILED', 'a write while the server is down');
      t.equal(store.health().state, 'read-only', 'read-only');
      t.match(store.health().error, /ECONNREFUSED|ECONNRESET|terminat|connect|shutting down/i, 'saying why');
      await rejectsWith(t, store.insertReadings(GW, batch(51), rx(T0 + 2)), 'STORAGE_WRITE_FAILED', 'refused at once while read-only');
      await rejectsWith(t, store.query(GW, 'p'), 'CENTRAL_STORE_UNAVAILABLE', 'a read: 503, retry later');
    });
    await eventually(() => store.health().state === 'ok', 30_000, 100);
    t.pass('ok again without anyone doing anything');
    t.same(await store.insertReadings(GW, batch(51), rx(T0 + 3)), { stored: 50, duplicates: 0 }, 'the refused batch, sent again, is stored');
    t.equal(await store.countSeqs(GW), 100);
    t.same((await store.query(GW, 'p', { limit: 1, order: 'desc' }))[0], { t: T0 + 100_000, v: 100 });
  });

  const batchOf = (first: number, n = 50) => Array.from({ length: n }, (_, i) => ({ seq: first + i, id: 'p', t: T0 + (first + i) * 1000, v: first + i }));
  /** `p`, or a failure after `ms` rather than a test that hangs (the behaviour before the write timeout). */
  const within = <T>(p: Promise<T>, ms: number): Promise<T> =>
    Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still waiting after ${ms} ms`)), ms).unref())]);

  t.test('a write waiting on a lock past postgres.writeTimeoutSeconds fails, stores nothing, and the store stays writable', async (t) => {
    const url = await freshDatabase();
    const store = await openStore(t, url, { writeTimeoutMs: 1000, refreshMs: 0 });
    t.same(await store.insertReadings(GW, batchOf(1), rx(T0)), { stored: 50, duplicates: 0 });
    // Someone's maintenance holds the seq runs table (a VACUUM FULL, a long ALTER).
    const holder = new pgLib.Client({ connectionString: url });
    await holder.connect();
    t.teardown(() => holder.end());
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE outpost.seq_runs IN ACCESS EXCLUSIVE MODE');
    const err = await rejectsWith(t, within(store.insertReadings(GW, batchOf(51), rx(T0 + 1)), 30_000), 'STORAGE_WRITE_FAILED', 'the write fails');
    t.match(err?.message, /did not finish a statement within 1000 ms/, 'saying it waited too long');
    t.equal(store.health().state, 'ok', 'one slow write does not make the store read-only');
    await holder.query('COMMIT');
    t.same(await store.insertReadings(GW, batchOf(51), rx(T0 + 2)), { stored: 50, duplicates: 0 }, 'sent again once the lock is gone: all of it stored');
    t.equal(await store.countSeqs(GW), 100);
    t.equal(await psql(url, 'SELECT count(*) FROM outpost.readings'), '100', 'nothing stored twice or half');
  });

  t.test(
    'a write whose statements each wait on a lock, each within the timeout and together past twice it, commits: the deadline is for silence',
    async (t) => {
      const url = await freshDatabase();
      const store = await openStore(t, url, { writeTimeoutMs: 3000, refreshMs: 0 });
      t.same(await store.insertReadings(GW, batchOf(1), rx(T0)), { stored: 50, duplicates: 0 });
      const connected = async () => {
        const c = new pgLib.Client({ connectionString: url });
        await c.connect();
        t.teardown(() => c.end());
        return c;
      };
      // Maintenance on four tables, one after the other: the insert's COPYs into seq runs, readings,
      // dirty minutes (its times reach a minute the first batch did not) and its receipt each wait
      // 1.8 s, under the 3 s statement timeout, 7.2 s in all: past the 6 s it may stay silent.
      const tables = ['outpost.seq_runs', 'outpost.readings', 'outpost.rollup_dirty', 'outpost.receipts'];
      const holders = await Promise.all(
        tables.map(async (table) => {
          const holder = await connected();
          await holder.query('BEGIN');
          await holder.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
          return holder;
        }),
      );
      const watcher = await connected();
      const waiting = async () => (await watcher.query("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'relation' AND NOT granted")).rows[0].n;
      const insert = store.insertReadings(GW, batchOf(51), rx(T0 + 1));
      let started = performance.now();
      for (const holder of holders) {
        await eventually(async () => (await waiting()) === 1, 10_000, 20);
        await new Promise((r) => setTimeout(r, Math.max(0, 1800 - (performance.now() - started))));
        started = performance.now();
        await holder.query('COMMIT');
      }
      t.same(await within(insert, 30_000), { stored: 50, duplicates: 0 }, 'stored: every statement was answered in time');
      t.equal(store.health().state, 'ok', 'and the store stays writable');
      t.equal(await psql(url, 'SELECT count(*) FROM outpost.readings'), '100');
    },
  );

  t.test(
    'a database that stops answering mid-write: the connection is dropped at the deadline, read-only, then ok by itself past the dead connections',
    async (t) => {
      const url = await freshDatabase();
      const link = await frozenLink(t, pg.port);
      const through = new URL(url);
      through.port = String(link.port);
      const store = await openStore(t, through.toString(), { writeTimeoutMs: 1000, probeMs: 200, refreshMs: 0 });
      t.same(await store.insertReadings(GW, batchOf(1), rx(T0)), { stored: 50, duplicates: 0 });
      // Several idle connections in the pool, all of which the freeze will hold.
      await Promise.all(Array.from({ length: 4 }, () => store.query(GW, 'p')));
      link.freeze();
      await rejectsWith(
        t,
        within(store.insertReadings(GW, batchOf(51), rx(T0 + 1)), 30_000),
        'STORAGE_WRITE_FAILED',
        'the write fails instead of waiting for ever',
      );
      t.equal(store.health().state, 'read-only', 'read-only: the database does not answer');
      t.match(store.health().error, /did not answer within 2000 ms|timeout/i, 'saying why');
      // The firewall dropped the held connections: new ones get through, the pool's idle ones stay
      // silent for ever. The probe must not hang on one of them.
      link.cut();
      await eventually(() => store.health().state === 'ok', 45_000, 100);
      t.pass('ok again once the database answers, the silent connections given up');
      t.same(await store.insertReadings(GW, batchOf(51), rx(T0 + 2)), { stored: 50, duplicates: 0 }, 'the batch sent again is stored');
      t.equal(await store.countSeqs(GW), 100);
      t.equal(await psql(url, 'SELECT count(*) FROM outpost.readings'), '100');
    },
  );
});

/** Runs `fn` with the cluster stopped, and starts it again whatever happens. */
async function stopped(pg: ThrowawayPostgres, fn: () => Promise<void>): Promise<void> {
  await pg.stop('fast');
  try {
    await fn();
  } finally {
    await pg.start();
  }
}
