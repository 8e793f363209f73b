import type { Logger } from '../../log.js';
import type { PoolClient } from './db.js';

/**
 * The TimescaleDB path, taken when the `timescaledb` extension is installed on the server
 * (`pg_available_extensions`), preloaded, and can be created in this database when the schema
 * is first made. Debian bookworm does not package TimescaleDB, so CI runs the plain PostgreSQL
 * path only; test/central/postgres-timescale.test.ts runs the store's contract on hypertables
 * against a server built with it (`OUTPOST_TEST_TIMESCALE_BIN`; TimescaleDB 2.17.2 on
 * PostgreSQL 15.20 here). Kept small on purpose:
 *
 * - `readings` and `rollup_1m` are hypertables (7-day and 28-day chunks) instead of our
 *   weekly partitions; TimescaleDB creates chunks on insert, so partitions.ts does nothing.
 * - Readings are compressed after 30 days (segment by series, order by time). Late backfill
 *   into a compressed chunk needs TimescaleDB ≥ 2.11 (INSERT … ON CONFLICT into compressed
 *   chunks).
 * - Rollups stay our own tables and refresh (rollups.ts), not continuous aggregates: the
 *   `delta` aggregate needs the reset-aware counter increase inside a bucket
 *   (storage/rollups.ts `inc`), which needs the readings in order (a window function), and
 *   continuous aggregates allow neither window functions nor that increase without the
 *   separate Toolkit extension.
 *
 * The choice is recorded in `outpost.settings` (`layout`) when the schema is made and kept:
 * installing TimescaleDB later does not convert an existing database.
 */
export async function timescaleUsable(c: PoolClient, log: Logger): Promise<boolean> {
  const available = await c.query("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'");
  if (available.rowCount === 0) return false;
  // Installed but not in shared_preload_libraries: CREATE EXTENSION fails with FATAL ("must be
  // preloaded"), which ends the connection, so no savepoint can catch it and the store could
  // never open. Only the preloaded loader defines this setting, and any role may read it
  // (shared_preload_libraries itself is for superusers).
  const preloaded = await c.query("SELECT 1 FROM pg_settings WHERE name = 'timescaledb.bgw_launcher_poll_time'");
  if (preloaded.rowCount === 0) {
    log.warn(
      'PostgreSQL: TimescaleDB is installed but not in shared_preload_libraries; using plain partitions (add it there and restart PostgreSQL before the schema is made to use hypertables)',
    );
    return false;
  }
  await c.query('SAVEPOINT outpost_timescale');
  try {
    await c.query('CREATE EXTENSION IF NOT EXISTS timescaledb');
    await c.query('RELEASE SAVEPOINT outpost_timescale');
    log.info('PostgreSQL: TimescaleDB found, readings go to hypertables');
    return true;
  } catch (err) {
    // Installed and preloaded but not creatable here (no privilege): plain partitions.
    await c.query('ROLLBACK TO SAVEPOINT outpost_timescale');
    log.warn({ err: (err as Error).message }, 'PostgreSQL: TimescaleDB is installed but cannot be created in this database; using plain partitions');
    return false;
  }
}

export async function createTimescaleTables(c: PoolClient, readingColumns: string, rollupColumns: string): Promise<void> {
  await c.query(`
    CREATE TABLE outpost.readings (${readingColumns});
    SELECT create_hypertable('outpost.readings', 't', chunk_time_interval => interval '7 days');
    ALTER TABLE outpost.readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'series', timescaledb.compress_orderby = 't');
    SELECT add_compression_policy('outpost.readings', compress_after => interval '30 days');
    CREATE TABLE outpost.rollup_1m (${rollupColumns});
    SELECT create_hypertable('outpost.rollup_1m', 'bucket', chunk_time_interval => interval '28 days');
  `);
}
