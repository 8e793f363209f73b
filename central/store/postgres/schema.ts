import { OutpostError } from '../../../core/errors.js';
import '../../../storage/errors.js';
import type { Database, PoolClient } from './db.js';
import { ROLLUP_TABLES } from './rollup-sql.js';
import { createTimescaleTables, timescaleUsable } from './timescale.js';

/**
 * The schema of the PostgreSQL store, everything in the schema `outpost`:
 *
 * | table                                 | key                      | what                                                                                 |
 * | ------------------------------------- | ------------------------ | ------------------------------------------------------------------------------------ |
 * | `gateways`                            | `id`                     | every gateway that sent anything; its command cursor                                 |
 * | `datapoints`                          | `series`; `(gateway, id)` | each gateway datapoint, a `series` number for the readings, its newest reading      |
 * | `readings` (by week: `readings_p…`)   | `(series, t)`            | one reading per (gateway, datapoint, t): `v` a number, or `j` any other JSON value   |
 * | `seq_runs` (view `seqs`: a row per seq) | `(gateway, seq range)` disjoint | every outbox seq stored, as runs of consecutive seqs (migration 4, seq-runs.ts) |
 * | `receipts`                            | —                        | each commit of readings: via, lane, idempotency key, stored, duplicates              |
 * | `statuses`                            | `(gateway, at)`          | status documents and messages                                                        |
 * | `satellite_messages`                  | `(gateway, key)`         | MO messages (key: transmit second + momsn % 1000 ms, as series.ts `satelliteKey`)   |
 * | `commands`                            | `(gateway, cursor)`      | the command queue, sends and the gateways' answers (migration 2: expiry, `doc`)       |
 * | `rollup_1m` (by week), `_15m`, `_1h`, `_1d` | `(series, bucket)` | aggregates as storage/rollups.ts, kept by the refresh (rollups.ts)                  |
 * | `rollup_dirty`                        | —                        | (series, minute, generation) written by inserts since the last refresh (migration 3) |
 * | `rollup_generation`                   | —                        | one row: the generation inserts write their dirty minutes in (dirty-minutes.ts)      |
 * | `outpost_schema`, `settings`, `store_probe` | —                  | applied migrations; the readings layout; each process's health probe                 |
 *
 * Time is `timestamptz` (microseconds; epoch ms convert exactly both ways): operators query it
 * with `now() - interval '1 day'`, partition bounds read as dates, and it is TimescaleDB's
 * native time type. `readings` carries `series` (an int) rather than the gateway and datapoint
 * names: 4 bytes instead of ~30 on the largest table; `outpost.reading_values` joins the names
 * back for people. There is no foreign key from `readings` to `datapoints` (a lookup per row
 * on the hot path); the insert path registers the datapoint in the same transaction.
 *
 * Migrations are numbered and recorded in `outpost_schema`; they run in one transaction under
 * an advisory lock, so any number of central processes may open the same database at once:
 * the first applies them, the others wait and find them applied.
 */

/** Advisory lock keys: (OUTPOST, what). `OUTPOST` is "outp" as a 32-bit integer. */
export const LOCK_NAMESPACE = 0x6f757470;
export const LOCK_SCHEMA = 1;
export const LOCK_PARTITIONS = 2;
export const LOCK_REFRESH = 3;
export const LOCK_GENERATION = 4;
export const LOCK_SEQ_COMPACTION = 5;

/** Where the readings live: declarative partitions we create, or a TimescaleDB hypertable. */
export type Layout = 'partitioned' | 'hypertable';

interface Migration {
  version: number;
  description: string;
  apply(c: PoolClient, layout: Layout): Promise<void>;
}

const rollupColumns = `
  series int NOT NULL,
  bucket timestamptz NOT NULL,
  count int NOT NULL,
  sum float8 NOT NULL,
  min float8 NOT NULL,
  max float8 NOT NULL,
  fv float8 NOT NULL,
  lv float8 NOT NULL,
  inc float8 NOT NULL,
  PRIMARY KEY (series, bucket)`;

const readingColumns = `
  series int NOT NULL,
  t timestamptz NOT NULL,
  v float8,
  j jsonb,
  q text CHECK (q IN ('stale', 'bad')),
  PRIMARY KEY (series, t)`;

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    description: 'gateways, datapoints, readings by week, seqs, receipts, statuses, satellite messages, commands, rollups',
    async apply(c, layout) {
      await c.query(`
        CREATE TABLE outpost.gateways (
          id text PRIMARY KEY,
          first_seen timestamptz NOT NULL,
          command_cursor bigint NOT NULL DEFAULT 0
        );
        CREATE TABLE outpost.datapoints (
          series int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
          gateway text NOT NULL REFERENCES outpost.gateways (id),
          id text NOT NULL,
          type text NOT NULL DEFAULT 'unknown',
          first_seen timestamptz NOT NULL,
          last_seen timestamptz NOT NULL,
          latest_t timestamptz,
          latest_v float8,
          latest_j jsonb,
          latest_q text,
          UNIQUE (gateway, id)
        ) WITH (fillfactor = 70);
        CREATE TABLE outpost.seqs (
          gateway text NOT NULL,
          seq bigint NOT NULL,
          PRIMARY KEY (gateway, seq)
        );
        CREATE TABLE outpost.receipts (
          id bigint GENERATED ALWAYS AS IDENTITY,
          gateway text NOT NULL,
          at timestamptz NOT NULL,
          via text NOT NULL,
          lane text NOT NULL,
          key text,
          stored int NOT NULL,
          duplicates int NOT NULL
        );
        CREATE INDEX receipts_newest ON outpost.receipts (gateway, at DESC, id DESC);
        CREATE TABLE outpost.statuses (
          gateway text NOT NULL,
          at timestamptz NOT NULL,
          via text NOT NULL,
          status jsonb NOT NULL,
          PRIMARY KEY (gateway, at)
        );
        CREATE TABLE outpost.satellite_messages (
          gateway text NOT NULL,
          key timestamptz NOT NULL,
          imei text NOT NULL,
          momsn int NOT NULL,
          transmit_time timestamptz NOT NULL,
          bytes int NOT NULL,
          credits int NOT NULL,
          kind text NOT NULL,
          message jsonb NOT NULL,
          PRIMARY KEY (gateway, key)
        );
        CREATE TABLE outpost.commands (
          gateway text NOT NULL REFERENCES outpost.gateways (id),
          cursor bigint NOT NULL,
          request_id text NOT NULL,
          type text NOT NULL,
          command jsonb NOT NULL,
          state text NOT NULL CHECK (state IN ('queued', 'applied', 'refused')),
          created_at timestamptz NOT NULL,
          ack jsonb,
          acked_at timestamptz,
          PRIMARY KEY (gateway, cursor)
        );
        CREATE TABLE outpost.rollup_dirty (
          series int NOT NULL,
          minute timestamptz NOT NULL
        );
        CREATE INDEX rollup_dirty_series ON outpost.rollup_dirty (series, minute);
        CREATE TABLE outpost.store_probe (
          process text PRIMARY KEY,
          at timestamptz NOT NULL
        );
      `);
      // The two big tables: weekly partitions (partitions.ts), or hypertables (timescale.ts).
      if (layout === 'hypertable') await createTimescaleTables(c, readingColumns, rollupColumns);
      else
        await c.query(`
          CREATE TABLE outpost.readings (${readingColumns}) PARTITION BY RANGE (t);
          CREATE TABLE outpost.rollup_1m (${rollupColumns}) PARTITION BY RANGE (bucket);
        `);
      for (const table of ROLLUP_TABLES.slice(1)) await c.query(`CREATE TABLE outpost.${table} (${rollupColumns})`);
      await c.query(`
        CREATE VIEW outpost.reading_values AS
          SELECT d.gateway, d.id AS datapoint, r.t, coalesce(to_jsonb(r.v), r.j) AS value, r.q
          FROM outpost.readings r JOIN outpost.datapoints d USING (series);
        COMMENT ON TABLE outpost.readings IS 'One reading per (gateway datapoint = series, t); outpost.reading_values has the names';
        COMMENT ON TABLE outpost.seqs IS 'Every stored outbox seq per gateway: the first copy of a seq wins';
      `);
    },
  },
  {
    version: 2,
    description: 'commands: sent and expired states, expiry, groups, MT counters, the whole command as doc',
    async apply(c) {
      // Rows of migration 1 keep doc NULL: commands.ts reads them from their columns.
      await c.query(`
        ALTER TABLE outpost.commands DROP CONSTRAINT IF EXISTS commands_state_check;
        ALTER TABLE outpost.commands ADD CONSTRAINT commands_state_check CHECK (state IN ('queued', 'sent', 'applied', 'refused', 'expired'));
        ALTER TABLE outpost.commands
          ADD COLUMN expires_at timestamptz,
          ADD COLUMN group_id text,
          ADD COLUMN mt_counters bigint[] NOT NULL DEFAULT '{}',
          ADD COLUMN doc jsonb;
        UPDATE outpost.commands SET expires_at = created_at + interval '24 hours';
        ALTER TABLE outpost.commands ALTER COLUMN expires_at SET NOT NULL;
        CREATE INDEX commands_request ON outpost.commands (gateway, request_id);
        CREATE INDEX commands_pending ON outpost.commands (expires_at) WHERE state IN ('queued', 'sent');
        CREATE INDEX commands_newest ON outpost.commands (created_at DESC);
        CREATE INDEX commands_group ON outpost.commands (group_id) WHERE group_id IS NOT NULL;
        CREATE INDEX commands_mt ON outpost.commands USING gin (mt_counters);
        ALTER TABLE outpost.gateways ADD COLUMN mt_counter bigint NOT NULL DEFAULT 0;
      `);
    },
  },
  {
    version: 3,
    description: 'rollup generations: dirty minutes written once per (series, minute) and generation; datapoints without a foreign key',
    async apply(c) {
      // Entries already there get generation 0, older than any: the next refresh claims them.
      // The foreign key checked the gateway of every datapoint registered (a fleet's 100,000 at
      // its first contact); the insert path registers the gateway in the same transaction first.
      await c.query(`
        CREATE TABLE outpost.rollup_generation (generation bigint NOT NULL);
        INSERT INTO outpost.rollup_generation VALUES (1);
        ALTER TABLE outpost.rollup_dirty ADD COLUMN generation bigint NOT NULL DEFAULT 0;
        ALTER TABLE outpost.datapoints DROP CONSTRAINT IF EXISTS datapoints_gateway_fkey;
      `);
    },
  },
  {
    version: 4,
    description: 'seqs as runs: seq_runs (gateway, first_seq, last_seq), disjoint per gateway; seqs a view of it',
    async apply(c) {
      // btree_gist gives GiST the text equality the exclusion constraint pairs with the range
      // overlap; it is a trusted extension (PostgreSQL 13+): a database owner may create it.
      // The runs of the seqs stored so far: consecutive seqs share seq - row_number().
      await c.query(`
        CREATE EXTENSION IF NOT EXISTS btree_gist;
        CREATE TABLE outpost.seq_runs (
          gateway text NOT NULL,
          first_seq bigint NOT NULL,
          last_seq bigint NOT NULL,
          CONSTRAINT seq_runs_ordered CHECK (first_seq <= last_seq),
          CONSTRAINT seq_runs_disjoint EXCLUDE USING gist (gateway WITH =, int8range(first_seq, last_seq, '[]') WITH &&)
        );
        INSERT INTO outpost.seq_runs (gateway, first_seq, last_seq)
          SELECT gateway, min(seq), max(seq)
          FROM (SELECT gateway, seq, seq - row_number() OVER (PARTITION BY gateway ORDER BY seq) AS run FROM outpost.seqs) s
          GROUP BY gateway, run;
        DROP TABLE outpost.seqs;
        CREATE VIEW outpost.seqs AS SELECT gateway, generate_series(first_seq, last_seq) AS seq FROM outpost.seq_runs;
        COMMENT ON TABLE outpost.seq_runs IS 'Every stored outbox seq per gateway, as runs of consecutive seqs; no two runs of a gateway overlap (the first copy of a seq wins)';
        COMMENT ON VIEW outpost.seqs IS 'Every stored outbox seq per gateway, a row each (from outpost.seq_runs)';
      `);
    },
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/**
 * Brings the schema to SCHEMA_VERSION (idempotent, safe with other processes doing the same)
 * and answers the readings layout. A database at a newer version than this code knows is
 * refused: an older Outpost would misread it.
 */
export async function migrate(db: Database): Promise<Layout> {
  return db.transaction(async (c) => {
    await c.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_NAMESPACE, LOCK_SCHEMA]);
    // Looked up first: CREATE SCHEMA checks the privilege to create even when the schema exists,
    // and a database an administrator prepared may be opened by a role without it.
    const made = await c.query<{ oid: string | null }>("SELECT to_regclass('outpost.settings') AS oid");
    if (!made.rows[0]?.oid)
      await c.query(`
      CREATE SCHEMA IF NOT EXISTS outpost;
      CREATE TABLE IF NOT EXISTS outpost.outpost_schema (
        version int PRIMARY KEY,
        description text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE IF NOT EXISTS outpost.settings (
        name text PRIMARY KEY,
        value text NOT NULL
      );
    `);
    const applied = new Set((await c.query<{ version: number }>('SELECT version FROM outpost.outpost_schema')).rows.map((r) => r.version));
    const newest = Math.max(0, ...applied);
    if (newest > SCHEMA_VERSION)
      throw new OutpostError(
        'STORAGE_OPEN_FAILED',
        `the database schema is at version ${newest}, newer than this Outpost Central knows (${SCHEMA_VERSION}): run the newer version`,
      );
    const stored = (await c.query<{ value: string }>("SELECT value FROM outpost.settings WHERE name = 'layout'")).rows[0]?.value;
    const layout: Layout = stored === 'hypertable' || stored === 'partitioned' ? stored : (await timescaleUsable(c, db.log)) ? 'hypertable' : 'partitioned';
    if (stored === undefined) await c.query("INSERT INTO outpost.settings (name, value) VALUES ('layout', $1)", [layout]);
    for (const m of MIGRATIONS) {
      if (applied.has(m.version)) continue;
      await m.apply(c, layout);
      await c.query('INSERT INTO outpost.outpost_schema (version, description) VALUES ($1, $2)', [m.version, m.description]);
      db.log.info({ version: m.version, layout }, `PostgreSQL schema: applied migration ${m.version} (${m.description})`);
    }
    return layout;
  });
}
