import type { Database, PoolClient } from './db.js';
import { LOCK_NAMESPACE, LOCK_PARTITIONS, type Layout } from './schema.js';

const DAY_MS = 86_400_000;
export const WEEK_MS = 7 * DAY_MS;
/** The tables partitioned by week, each with a partition per week (`<table>_p<yyyymmdd>` of its Monday). */
export const PARTITIONED_TABLES = ['readings', 'rollup_1m'] as const;
/** Weeks created ahead of the current one, so live data never waits for DDL. */
const WEEKS_AHEAD = 4;

/** Monday 00:00 UTC of the ISO week holding `t` (1970-01-01 was a Thursday). */
export function weekStart(t: number): number {
  const day = Math.floor(t / DAY_MS);
  const sinceMonday = (((day + 3) % 7) + 7) % 7;
  return (day - sinceMonday) * DAY_MS;
}

/** `p20250303`: the week's Monday (years past 9999 keep their digits). */
export function partitionSuffix(start: number): string {
  const d = new Date(start);
  const pad = (n: number, w: number) => String(n).padStart(w, '0');
  return `p${pad(d.getUTCFullYear(), 4)}${pad(d.getUTCMonth() + 1, 2)}${pad(d.getUTCDate(), 2)}`;
}

/**
 * Weekly range partitions of `readings` and `rollup_1m`, created ahead (this week and the next
 * four, at open and every few hours) and on demand.
 *
 * On demand rather than a DEFAULT partition: gateways send history — a site offline for a
 * month, a trend file imported on the site — so readings for weeks long past arrive at any
 * time. With a DEFAULT partition those rows would land there, and creating the week's
 * partition later would have to move them out under a lock that stops every insert. Instead
 * the insert path looks at the weeks of its batch; a week not known to exist is created first,
 * in its own short transaction (CREATE TABLE, then ATTACH PARTITION, which takes only a SHARE
 * UPDATE EXCLUSIVE lock on the parent: inserts and queries go on, unlike CREATE TABLE …
 * PARTITION OF, which needs ACCESS EXCLUSIVE), serialised across processes by an advisory
 * lock. The known weeks are cached, so a batch of a known week costs no query. Should a
 * partition be dropped behind our back, the insert fails with "no partition of relation", the
 * cache is reloaded and the week created again (db.ts `onNoPartition`).
 *
 * Weeks, not months: a fleet of a thousand sites writes hundreds of millions of readings a
 * week, and a partition whose index fits in memory keeps inserts fast (TimescaleDB's default
 * chunk is 7 days for the same reason). Ten years of imported history is 520 partitions, which
 * PostgreSQL prunes at plan time for every query here (all are bounded in time).
 */
export class Partitions {
  private readonly known = new Set<number>();

  constructor(
    private readonly db: Database,
    private readonly layout: Layout,
  ) {}

  /** Reads which weeks exist (partitions named as we name them). */
  async load(): Promise<void> {
    this.known.clear();
    if (this.layout !== 'partitioned') return;
    // Partitions on ingest's connections (db.ts `ingestPool`): an insert that needs a week waits for no API read.
    const { rows } = await this.db.ingestPool.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'outpost.readings'::regclass`,
    );
    for (const { name } of rows) {
      const m = /^readings_p(\d{4,})(\d{2})(\d{2})$/.exec(name);
      if (m) this.known.add(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
    }
  }

  /** Creates the weeks holding `times` that do not exist yet. */
  async ensureFor(times: Iterable<number>): Promise<void> {
    if (this.layout !== 'partitioned') return;
    const missing = new Set<number>();
    // The week of the time before, checked once: a batch's times run in order (every record
    // of every insert passes here, before its transaction).
    let from = Number.POSITIVE_INFINITY;
    let to = Number.NEGATIVE_INFINITY;
    for (const t of times) {
      if (t >= from && t < to) continue;
      const w = weekStart(t);
      if (!this.known.has(w)) missing.add(w);
      from = w;
      to = w + WEEK_MS;
    }
    for (const w of [...missing].sort((a, b) => a - b)) await this.ensureWeek(w);
  }

  /** This week and the next WEEKS_AHEAD. */
  async ahead(now: number): Promise<void> {
    const first = weekStart(now);
    await this.ensureFor(Array.from({ length: WEEKS_AHEAD + 1 }, (_, i) => first + i * WEEK_MS));
  }

  /** After "no partition of relation": what exists now, and the weeks of the failed batch. */
  async repair(times: Iterable<number>): Promise<void> {
    await this.load();
    await this.ensureFor(times);
  }

  private async ensureWeek(start: number): Promise<void> {
    const suffix = partitionSuffix(start);
    await this.db.transaction(
      async (c) => {
        await c.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_NAMESPACE, LOCK_PARTITIONS]);
        for (const table of PARTITIONED_TABLES) await attachWeek(c, table, suffix, start);
      },
      'BEGIN',
      undefined,
      this.db.ingestPool,
    );
    this.known.add(start);
    this.db.log.info({ week: new Date(start).toISOString().slice(0, 10) }, `PostgreSQL: partitions ${suffix} created`);
  }

  /** Weeks known to exist (tests, the maintenance log). */
  get size(): number {
    return this.known.size;
  }
}

async function attachWeek(c: PoolClient, table: string, suffix: string, start: number): Promise<void> {
  const name = `${table}_${suffix}`;
  const exists = await c.query<{ oid: string | null }>('SELECT to_regclass($1) AS oid', [`outpost.${name}`]);
  if (exists.rows[0]?.oid) return;
  // Names and bounds are ours (digits of a date, numbers): nothing from outside goes into the DDL.
  await c.query(`CREATE TABLE outpost.${name} (LIKE outpost.${table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`);
  await c.query(
    `ALTER TABLE outpost.${table} ATTACH PARTITION outpost.${name} FOR VALUES FROM (to_timestamp(${start / 1000})) TO (to_timestamp(${(start + WEEK_MS) / 1000}))`,
  );
}
