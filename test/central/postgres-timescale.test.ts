/**
 * The PostgreSQL store on TimescaleDB (central/store/postgres/timescale.ts): hypertables instead
 * of our weekly partitions, compression after 30 days. Debian bookworm packages no TimescaleDB,
 * so this file runs only against a server built with it — `OUTPOST_TEST_TIMESCALE_BIN=<its bin
 * dir>` (central/README.md "TimescaleDB" says how one was built here) — and is skipped
 * otherwise, CI included.
 */
import { Writable } from 'node:stream';
import t from 'tap';
import { pino } from 'pino';
import type { Logger } from '../../central/log.js';
import type { Receipt } from '../../central/store/contract.js';
import { PostgresCentralStore } from '../../central/store/postgres.js';
import { psql, startThrowawayPostgres } from '../helpers/postgres.js';
import { centralStoreContract, databaseHarness } from './store-contract.js';

const bin = process.env.OUTPOST_TEST_TIMESCALE_BIN;
const skip = bin ? false : 'no PostgreSQL with TimescaleDB (Debian packages none): set OUTPOST_TEST_TIMESCALE_BIN to the bin dir of one';
const PRELOAD = ["shared_preload_libraries = 'timescaledb'", "timescaledb.telemetry_level = 'off'"];

const GW = 'site-042';
const T0 = Date.UTC(2025, 2, 3, 10);
const rx = (at: number): Receipt => ({ via: 'mqtt', lane: 'history', at });

function capturedLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    }),
  );
  return { log, lines };
}

t.test('TimescaleDB installed but not preloaded: the store opens on plain partitions and says why', { skip }, async (t) => {
  // Its CREATE EXTENSION fails with FATAL ("must be preloaded"), which ends the connection:
  // before the check the store could not open at all.
  const pg = await startThrowawayPostgres(t, { bin });
  const { log, lines } = capturedLog();
  const store = new PostgresCentralStore({ url: pg.url, refreshMs: 0, log });
  await store.open();
  t.teardown(() => store.close());
  t.equal(store.layout, 'partitioned');
  t.match(lines.join(''), /TimescaleDB is installed but not in shared_preload_libraries/, 'the log says why');
  t.same(await store.insertReadings(GW, [{ seq: 1, id: 'p', t: T0, v: 1 }], rx(T0)), { stored: 1, duplicates: 0 });
});

t.test('TimescaleDB preloaded', { skip }, async (t) => {
  const pg = await startThrowawayPostgres(t, { bin, settings: PRELOAD });
  let databases = 0;
  const open = async (t: Parameters<Parameters<typeof centralStoreContract>[1]['open']>[0], url: string) => {
    const store = new PostgresCentralStore({ url, refreshMs: 100 });
    await store.open();
    t.teardown(() => store.close());
    return store;
  };

  t.test('the store contract (test/central/store-contract.ts) on hypertables', async (t) => {
    centralStoreContract(
      t,
      databaseHarness(
        () => pg.createDatabase(`contract_${++databases}`),
        async (t, url) => {
          const store = await open(t, url);
          t.equal(store.layout, 'hypertable');
          return store;
        },
      ),
    );
  });

  t.test("hypertables, chunks made on demand, an operator's drop_chunks, writes into compressed chunks", async (t) => {
    const url = await pg.createDatabase('layout');
    const store = await open(t, url);
    t.equal(store.layout, 'hypertable');
    t.equal(
      await psql(
        url,
        "SELECT string_agg(hypertable_name || ':' || compression_enabled, ',' ORDER BY hypertable_name) FROM timescaledb_information.hypertables WHERE hypertable_schema = 'outpost'",
      ),
      'readings:true,rollup_1m:false',
      'readings compressed, the finest rollups not',
    );
    t.equal(await psql(url, "SELECT config->>'compress_after' FROM timescaledb_information.jobs WHERE proc_name = 'policy_compression'"), '30 days');
    const future = Date.UTC(2031, 6, 15, 12);
    const past = Date.UTC(1999, 0, 6, 3, 4, 5, 678);
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
    t.equal(await psql(url, "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'readings'"), '2', 'a chunk each');
    t.same(await store.query(GW, 'x', { from: past, to: past }), [{ t: past, v: 2 }], 'to the millisecond');
    await psql(url, "SELECT drop_chunks('outpost.readings', older_than => '2000-01-01'::timestamptz)");
    t.same(await store.query(GW, 'x', { from: past, to: past }), [], "the 1999 chunk dropped by an operator's drop_chunks");
    t.same(await store.insertReadings(GW, [{ seq: 3, id: 'x', t: past + 1000, v: 3 }], rx(T0 + 1)), { stored: 1, duplicates: 0 }, 'and made again');

    // A day of a meter, compressed (as the policy does after 30 days), then late data into it:
    // a resend (dropped by its seqs), new readings between, and a correction of a stored time.
    const minute = 60_000;
    const day = Array.from({ length: 60 }, (_, k) => ({ seq: 100 + k, id: 'm', t: T0 + k * minute, v: k }));
    t.same(await store.insertReadings(GW, day, rx(T0)), { stored: 60, duplicates: 0 });
    const compressed = await psql(
      url,
      "SELECT count(compress_chunk(c)) FROM show_chunks('outpost.readings', older_than => now() - interval '30 days') c WHERE c::text NOT LIKE '%compress%'",
    );
    t.ok(Number(compressed) >= 1, `${compressed} chunks compressed`);
    t.equal(await psql(url, "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'readings' AND is_compressed"), compressed);
    t.same(await store.insertReadings(GW, day.slice(0, 10), rx(T0 + 2)), { stored: 0, duplicates: 10 }, 'a resend dropped');
    const between = Array.from({ length: 20 }, (_, k) => ({ seq: 200 + k, id: 'm', t: T0 + k * minute + 30_000, v: 1000 + k }));
    t.same(await store.insertReadings(GW, between, rx(T0 + 3)), { stored: 20, duplicates: 0 }, 'new readings into the compressed chunk');
    t.same(
      await store.insertReadings(GW, [{ seq: 300, id: 'm', t: T0 + 5 * minute, v: -5 }], rx(T0 + 4)),
      { stored: 1, duplicates: 0 },
      'a correction of a stored time',
    );
    const values = await store.query(GW, 'm', { from: T0, to: T0 + 60 * minute, limit: 1000 });
    t.equal(values.length, 80, 'each reading once');
    t.same(
      values.find((v) => v.t === T0 + 5 * minute),
      { t: T0 + 5 * minute, v: -5 },
      'the correction replaced the compressed reading',
    );
    await store.refreshRollups();
    const sum = await store.queryAggregate(GW, 'm', { from: T0, to: T0 + 60 * minute, interval: 3_600_000, agg: 'sum' });
    const expected = day.reduce((n, r) => n + r.v, 0) - 5 - 5 + between.reduce((n, r) => n + r.v, 0);
    t.same(
      sum.map((a) => [a.v, a.count]),
      [[expected, 80]],
      'rollups over the compressed chunk',
    );
  });
});
