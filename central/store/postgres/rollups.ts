import {
  MAX_AGGREGATE_INTERVALS,
  RESOLUTIONS,
  bestResolution,
  bucketStart,
  finalize,
  mergeOrdered,
  validateAggregateQuery,
  type Agg,
  type AggregatePoint,
  type AggregateQuery,
} from '../../../storage/rollups.js';
import type { Database, PoolClient } from './db.js';
import { bumpGeneration } from './dirty-minutes.js';
import type { Partitions } from './partitions.js';
import { BUCKET_COLUMNS, RAW_MINUTES_SQL, REFRESH_NEWEST, ROLLUP_TABLES, refreshSql } from './rollup-sql.js';
import { LOCK_NAMESPACE, LOCK_REFRESH } from './schema.js';

interface BucketRow {
  t: number;
  count: number;
  sum: number;
  min: number;
  max: number;
  fv: number;
  lv: number;
  inc: number;
}

/** Dirty entries claimed per refresh transaction: bounded work and memory per round. */
export const REFRESH_BATCH = 20_000;
/** Dirty minutes closer than this are read with one range scan (the refreshed minutes between them are read and left out). */
const RUN_GAP_SECONDS = 15 * 60;
/** Rounds per scheduled refresh (a backlog is worked off over several ticks). */
const MAX_ROUNDS = 50;

const agg = (r: BucketRow): Agg => ({ count: r.count, sum: r.sum, min: r.min, max: r.max, ft: r.t, fv: r.fv, lt: r.t, lv: r.lv, inc: r.inc });

/**
 * Rollups on plain PostgreSQL: tables per resolution (1 min, 15 min, 1 h, 1 d) kept by a
 * refresh, and aggregate queries that read them, exact at any moment.
 *
 * **Refresh.** Every insert writes the (series, minute) of each reading it changed into
 * `rollup_dirty`, in its own transaction (rows without a key, so inserts never wait for each
 * other there). The refresh (every `refreshMs` in each central process; one at a time across
 * processes, by `pg_try_advisory_xact_lock`: a process that finds it held skips the tick)
 * claims up to REFRESH_BATCH entries by deleting them and, in the same transaction, recomputes
 * those minutes from the raw readings, then the 15 min buckets holding them from the 1 min
 * ones, the hours from the quarters and the days from the hours. An insert committed after the
 * claim left its own entry, which the next round takes: nothing is lost between the two. Each
 * round first starts a new generation and claims only entries of older ones, so inserts may
 * write a (series, minute) once per generation (dirty-minutes.ts). The
 * same transaction moves each claimed series' newest reading into `datapoints`
 * (rollup-sql.ts REFRESH_NEWEST).
 *
 * **Queries** read, in one REPEATABLE READ snapshot, the dirty minutes of the series, the
 * stored buckets of the coarsest resolution that tiles the interval except those holding a
 * dirty minute, for those the 1 min buckets except the dirty minutes, and the dirty minutes
 * computed from raw. In one snapshot a minute is either dirty or refreshed (claim and
 * recompute commit together), so the answer is exact right after an insert, the refresh only
 * makes it cheaper. Queries never write: an API process may read from a replica.
 */
export class Rollups {
  constructor(
    private readonly db: Database,
    private readonly partitions: Partitions,
  ) {}

  /** One refresh transaction: the dirty entries claimed (0: none; -1: another process is refreshing). */
  async refreshRound(limit = REFRESH_BATCH): Promise<number> {
    let claimedTimes: number[] = [];
    // Nothing dirty: no new generation either (starting one makes new inserts wait for the running ones).
    const dirty = await this.db.read(() => this.db.query('SELECT 1 FROM outpost.rollup_dirty LIMIT 1'));
    if (dirty.rowCount === 0) return 0;
    // Only entries of ended generations are claimed (dirty-minutes.ts): a new one first.
    const generation = await this.db.write('rollup generation', bumpGeneration, { idempotent: true });
    return this.db.write(
      'rollup refresh',
      async (c) => {
        const lock = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1, $2) AS ok', [LOCK_NAMESPACE, LOCK_REFRESH]);
        if (!lock.rows[0]?.ok) return -1;
        const { rows } = await c.query<{ series: number; s: number }>(
          `DELETE FROM outpost.rollup_dirty WHERE ctid = ANY (ARRAY(SELECT ctid FROM outpost.rollup_dirty WHERE generation < $2 LIMIT $1))
           RETURNING series, date_part('epoch', minute) AS s`,
          [limit, generation],
        );
        if (rows.length === 0) return 0;
        const pairs = new Map<string, { series: number; s: number }>();
        for (const r of rows) pairs.set(`${r.series}:${r.s}`, r);
        const sorted = [...pairs.values()].sort((a, b) => a.series - b.series || a.s - b.s);
        const series = sorted.map((p) => p.series);
        const minutes = sorted.map((p) => p.s);
        claimedTimes = minutes.map((s) => s * 1000);
        for (let level = 0; level < ROLLUP_TABLES.length; level++) await c.query(refreshSql(level), [series, minutes]);
        // Sorted by (series, minute): the last pair of each series holds its newest claimed minute.
        const newest = sorted.filter((p, i) => sorted[i + 1]?.series !== p.series);
        await c.query(REFRESH_NEWEST, [newest.map((p) => p.series), newest.map((p) => p.s)]);
        return rows.length;
      },
      { idempotent: true, onNoPartition: () => this.partitions.repair(claimedTimes) },
    );
  }

  /** Refreshes until nothing is dirty (or MAX_ROUNDS, or another process is at it); the entries claimed. */
  async refresh(): Promise<number> {
    let total = 0;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const n = await this.refreshRound();
      if (n <= 0) break;
      total += n;
      if (n < REFRESH_BATCH) break;
    }
    return total;
  }

  /** Aggregates per interval of one series (storage/rollups.ts semantics; empty intervals left out). */
  async aggregate(series: number, q: AggregateQuery): Promise<AggregatePoint[]> {
    validateAggregateQuery(q);
    const res = bestResolution(q.interval);
    const level = RESOLUTIONS.indexOf(res);
    const from = Math.max(0, bucketStart(q.from, q.interval));
    const to = bucketStart(q.to, q.interval) + q.interval - 1;
    const limit = Math.min(q.limit ?? MAX_AGGREGATE_INTERVALS, MAX_AGGREGATE_INTERVALS);
    return this.db.read(() =>
      this.db.transaction(async (c) => {
        const dirty = (
          await c.query<{ s: number }>(
            `SELECT DISTINCT date_part('epoch', minute) AS s FROM outpost.rollup_dirty WHERE series = $1 AND minute <= to_timestamp($2) ORDER BY 1`,
            [series, to / 1000],
          )
        ).rows.map((r) => r.s * 1000);
        const inRange = dirty.filter((m) => m >= from);
        const pieces = await this.pieces(c, series, level, from, to, inRange);
        pieces.sort((a, b) => a.t - b.t);
        const intervals: Array<{ t: number; agg: Agg }> = [];
        let current: { t: number; agg: Agg } | undefined;
        for (const p of pieces) {
          const t = bucketStart(p.t, q.interval);
          if (current && current.t === t) current.agg = mergeOrdered(current.agg, agg(p));
          else {
            if (intervals.length >= limit) break;
            current = { t, agg: agg(p) };
            intervals.push(current);
          }
        }
        const before =
          q.agg === 'delta' && from > 0 && intervals.length > 0
            ? await this.before(
                c,
                series,
                from,
                dirty.filter((m) => m < from),
              )
            : undefined;
        return finalize(intervals, q.agg, before);
      }, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY'),
    );
  }

  /** Buckets covering [from, to] at `level`, the ones holding a dirty minute replaced by finer or raw ones. */
  private async pieces(c: PoolClient, series: number, level: number, from: number, to: number, dirty: number[]): Promise<BucketRow[]> {
    const table = ROLLUP_TABLES[level]!;
    const resMs = RESOLUTIONS[level]!.ms;
    const dirtySeconds = dirty.map((m) => m / 1000);
    const parents = level === 0 ? dirtySeconds : [...new Set(dirty.map((m) => bucketStart(m, resMs) / 1000))];
    const out = (
      await c.query<BucketRow>(
        `SELECT ${BUCKET_COLUMNS} FROM outpost.${table}
         WHERE series = $1 AND bucket >= to_timestamp($2) AND bucket <= to_timestamp($3) AND NOT (date_part('epoch', bucket) = ANY ($4::float8[]))`,
        [series, from / 1000, to / 1000, parents],
      )
    ).rows;
    if (dirty.length === 0) return out;
    if (level > 0) {
      const finer = await c.query<BucketRow>(
        `SELECT ${BUCKET_COLUMNS} FROM unnest($2::float8[]) AS p(s)
         JOIN outpost.rollup_1m c ON c.series = $1 AND c.bucket >= to_timestamp(p.s) AND c.bucket < to_timestamp(p.s + $3)
         WHERE NOT (date_part('epoch', c.bucket) = ANY ($4::float8[]))`,
        [series, parents, resMs / 1000, dirtySeconds],
      );
      out.push(...finer.rows);
    }
    out.push(...(await this.rawMinutes(c, series, dirtySeconds)));
    return out;
  }

  /** The given minutes of a series from raw readings, read in runs of minutes at most RUN_GAP apart. */
  private async rawMinutes(c: PoolClient, series: number, minuteSeconds: number[]): Promise<BucketRow[]> {
    if (minuteSeconds.length === 0) return [];
    const sorted = [...minuteSeconds].sort((a, b) => a - b);
    const starts: number[] = [sorted[0]!];
    const ends: number[] = [sorted[0]! + 60];
    for (const s of sorted.slice(1)) {
      if (s - ends[ends.length - 1]! <= RUN_GAP_SECONDS) ends[ends.length - 1] = s + 60;
      else {
        starts.push(s);
        ends.push(s + 60);
      }
    }
    return (await c.query<BucketRow>(RAW_MINUTES_SQL, [series, starts, ends, sorted])).rows;
  }

  /**
   * The bucket whose last reading `delta` counts the first interval from: the newest numeric
   * reading before `from`, however long before — the newest refreshed minute, or a newer dirty
   * one computed from raw.
   */
  private async before(c: PoolClient, series: number, from: number, dirtyBefore: number[]): Promise<Agg | undefined> {
    const dirtySeconds = dirtyBefore.map((m) => m / 1000);
    const stored = (
      await c.query<BucketRow>(
        `SELECT ${BUCKET_COLUMNS} FROM outpost.rollup_1m
         WHERE series = $1 AND bucket < to_timestamp($2) AND NOT (date_part('epoch', bucket) = ANY ($3::float8[]))
         ORDER BY bucket DESC LIMIT 1`,
        [series, from / 1000, dirtySeconds],
      )
    ).rows[0];
    const newer = dirtySeconds.filter((s) => stored === undefined || s * 1000 > stored.t);
    const raw = (await this.rawMinutes(c, series, newer)).sort((a, b) => b.t - a.t)[0];
    const best = raw ?? stored;
    return best ? agg(best) : undefined;
  }
}
