import { RESOLUTIONS } from '../../../storage/rollups.js';

/**
 * The rollup arithmetic of storage/rollups.ts in SQL, shared by the refresh (which stores it)
 * and the aggregate query (which computes the buckets the refresh has not reached yet). A
 * bucket is (count, sum, min, max, fv, lv, inc): `fv`/`lv` the first and last numeric reading
 * by time, `inc` the reset-aware counter increase inside the bucket (`counterStep`: a drop
 * counts as a reset to zero). Buckets are UTC-aligned (`date_bin` from the epoch).
 *
 * Statements take the (series, minute) pairs to work on as `$1 int4[]` and `$2 float8[]`
 * (epoch seconds of the minute), and name them `par` after mapping each minute to the bucket
 * of the resolution being computed.
 */

/** Tables per resolution, finest first (rollups.ts RESOLUTIONS: 1m, 15m, 1h, 1d). */
export const ROLLUP_TABLES = RESOLUTIONS.map((r) => `rollup_${r.name}`);
export const RESOLUTION_SECONDS = RESOLUTIONS.map((r) => r.ms / 1000);

/**
 * `numericValue` of storage/rollups.ts for a reading row `r`: finite numbers, booleans as 0/1;
 * strings, JSON and missing values count for nothing. Quality does not matter, as on the site.
 */
export const NUMERIC = `CASE
  WHEN r.v IS NOT NULL THEN CASE WHEN r.v IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8) THEN NULL ELSE r.v END
  WHEN r.j = 'true'::jsonb THEN 1::float8
  WHEN r.j = 'false'::jsonb THEN 0::float8
END`;

/** The buckets of `seconds` holding the given minutes. */
export function parentsCte(seconds: number): string {
  return `par AS (
    SELECT DISTINCT s AS series, date_bin(interval '${seconds} seconds', to_timestamp(ts), timestamptz 'epoch') AS bucket
    FROM unnest($1::int4[], $2::float8[]) AS u(s, ts)
  )`;
}

/** `agg`: 1-minute buckets from the raw readings of the minutes in `par`. */
export const RAW_AGG = `agg AS (
  SELECT series, bucket, count(*)::int AS count, sum(n) AS sum, min(n) AS min, max(n) AS max, min(fv) AS fv, min(lv) AS lv,
    coalesce(sum(CASE WHEN n >= prev THEN n - prev ELSE n END) FILTER (WHERE prev IS NOT NULL), 0) AS inc
  FROM (
    SELECT par.series, par.bucket, x.n,
      lag(x.n) OVER w AS prev,
      first_value(x.n) OVER w AS fv,
      last_value(x.n) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS lv
    FROM par CROSS JOIN LATERAL (
      SELECT r.t, ${NUMERIC} AS n FROM outpost.readings r
      WHERE r.series = par.series AND r.t >= par.bucket AND r.t < par.bucket + interval '60 seconds'
    ) x
    WHERE x.n IS NOT NULL
    WINDOW w AS (PARTITION BY par.series, par.bucket ORDER BY x.t)
  ) p
  GROUP BY series, bucket
)`;

/** `agg`: buckets of `seconds` merged in time order from the child table's buckets (rollups.ts `mergeOrdered`). */
export function childAgg(child: string, seconds: number): string {
  return `agg AS (
    SELECT series, bucket, sum(count)::int AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max, min(ffv) AS fv, min(llv) AS lv,
      sum(inc) + coalesce(sum(CASE WHEN fv >= prev THEN fv - prev ELSE fv END) FILTER (WHERE prev IS NOT NULL), 0) AS inc
    FROM (
      SELECT par.series, par.bucket, c.count, c.sum, c.min, c.max, c.inc, c.fv,
        lag(c.lv) OVER w AS prev,
        first_value(c.fv) OVER w AS ffv,
        last_value(c.lv) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS llv
      FROM par JOIN outpost.${child} c ON c.series = par.series AND c.bucket >= par.bucket AND c.bucket < par.bucket + interval '${seconds} seconds'
      WINDOW w AS (PARTITION BY par.series, par.bucket ORDER BY c.bucket)
    ) p
    GROUP BY series, bucket
  )`;
}

/**
 * Recomputes level `level` (0 = 1 min) for the parents of the given minutes: upserts what the
 * children give, deletes buckets left with nothing numeric (a reading replaced by a string).
 */
export function refreshSql(level: number): string {
  const table = ROLLUP_TABLES[level]!;
  const seconds = RESOLUTION_SECONDS[level]!;
  const agg = level === 0 ? RAW_AGG : childAgg(ROLLUP_TABLES[level - 1]!, seconds);
  return `WITH ${parentsCte(seconds)}, ${agg},
    up AS (
      INSERT INTO outpost.${table} AS t (series, bucket, count, sum, min, max, fv, lv, inc)
      SELECT series, bucket, count, sum, min, max, fv, lv, inc FROM agg
      ON CONFLICT (series, bucket) DO UPDATE SET count = excluded.count, sum = excluded.sum, min = excluded.min, max = excluded.max,
        fv = excluded.fv, lv = excluded.lv, inc = excluded.inc
    )
    DELETE FROM outpost.${table} t USING par
    WHERE t.series = par.series AND t.bucket = par.bucket
      AND NOT EXISTS (SELECT 1 FROM agg WHERE agg.series = t.series AND agg.bucket = t.bucket)`;
}

/** The columns of a bucket as the query reads them (`t` in epoch ms). */
export const BUCKET_COLUMNS = `round(date_part('epoch', bucket) * 1000) AS t, count, sum, min, max, fv, lv, inc`;

/**
 * 1-minute buckets of one series (`$1`) computed from raw readings, for the minutes `$4`
 * (epoch seconds) the refresh has not reached. The readings are read with one index range
 * scan per run of nearby minutes (`$2` starts, `$3` ends, epoch seconds) rather than one per
 * minute: dirty minutes come in runs (what arrived since the last refresh).
 */
export const RAW_MINUTES_SQL = `WITH pts AS (
  SELECT date_bin(interval '60 seconds', x.t, timestamptz 'epoch') AS bucket, x.t, x.n
  FROM unnest($2::float8[], $3::float8[]) AS run(lo, hi)
  CROSS JOIN LATERAL (
    SELECT r.t, ${NUMERIC} AS n FROM outpost.readings r
    WHERE r.series = $1 AND r.t >= to_timestamp(run.lo) AND r.t < to_timestamp(run.hi)
  ) x
  WHERE x.n IS NOT NULL
), p AS (
  SELECT bucket, n,
    lag(n) OVER w AS prev,
    first_value(n) OVER w AS fv,
    last_value(n) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS lv
  FROM pts WHERE date_part('epoch', bucket) = ANY ($4::float8[])
  WINDOW w AS (PARTITION BY bucket ORDER BY t)
)
SELECT round(date_part('epoch', bucket) * 1000) AS t, count(*)::int AS count, sum(n) AS sum, min(n) AS min, max(n) AS max, min(fv) AS fv, min(lv) AS lv,
  coalesce(sum(CASE WHEN n >= prev THEN n - prev ELSE n END) FILTER (WHERE prev IS NOT NULL), 0) AS inc
FROM p GROUP BY bucket`;

/**
 * `datapoints.latest_*` kept by the refresh rather than by every insert (an UPDATE of a
 * datapoint row per series per commit was a third of an insert's cost): for each series of
 * the claimed entries (`$1 int4[]`) the newest reading at or after its newest claimed minute
 * (`$2 float8[]`, epoch seconds) — the newest reading of those minutes, or a newer one — if
 * it is not older than the one stored. A reading committed after the claim left its own entry:
 * until the next refresh, query.ts `DATAPOINTS` finds it through that entry.
 */
export const REFRESH_NEWEST = `UPDATE outpost.datapoints d SET
  latest_t = n.t, latest_v = n.v, latest_j = n.j, latest_q = n.q, last_seen = greatest(d.last_seen, now()),
  type = CASE WHEN n.v IS NOT NULL THEN 'number' WHEN n.j IS NULL THEN 'unknown'
    WHEN jsonb_typeof(n.j) IN ('boolean', 'string') THEN jsonb_typeof(n.j) ELSE 'json' END
FROM unnest($1::int4[], $2::float8[]) AS m(series, s)
CROSS JOIN LATERAL (
  SELECT r.t, r.v, r.j, r.q FROM outpost.readings r WHERE r.series = m.series AND r.t >= to_timestamp(m.s) ORDER BY r.t DESC LIMIT 1
) n
WHERE d.series = m.series AND (d.latest_t IS NULL OR n.t >= d.latest_t)`;
