import type { Logger } from '../../log.js';
import type { PoolClient } from './db.js';

/**
 * The TimescaleDB path, taken when the `timescaledb` extension is installed on the server
 * (`pg_available_extensions`) and can be created in this database when the schema is first
 * made. UNTESTED HERE: Debian bookworm does not package TimescaleDB, so the tests run the
 * plain PostgreSQL path only (central/README.md says so). Kept small on purpose:
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
  await c.query('SAVEPOINT outpost_timescale');
  try {
    await c.query('CREATE EXTENSION IF NOT EXISTS timescaledb');
    await c.query('RELEASE SAVEPOINT outpost_timescale');
    log.info('PostgreSQL: TimescaleDB found, readings go to hypertables');
    return true;
  } catch (err) {
    // Installed but not usable here (not in shared_preload_libraries, no privilege): plain partitions.
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
