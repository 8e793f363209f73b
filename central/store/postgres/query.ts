import { MAX_TIME } from '../../../storage/level/db.js';
import { DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT } from '../../../storage/store.js';
import { typeOfValue, type CentralDatapoint, type RangeQuery, type StoredValue } from '../contract.js';
import type { Catalog } from './catalog.js';
import { decodeValue, num, type ValueRow } from './codec.js';
import type { Database } from './db.js';

interface DatapointRow {
  gateway: string;
  id: string;
  t: number | null;
  v: number | null;
  j: ValueRow['j'];
  q: string | null;
}

/**
 * Each datapoint's newest reading, exact at any moment in one statement (one snapshot): the
 * one the rollup refresh stored in `datapoints` (rollup-sql.ts REFRESH_NEWEST), or a newer
 * (or replaced) one an insert has written since, which its `rollup_dirty` entry points to —
 * the newest reading from the series' newest dirty minute on. Two index probes per datapoint,
 * a third for one with dirty minutes.
 */
const DATAPOINTS = `SELECT d.gateway, d.id,
    round(date_part('epoch', coalesce(n.t, d.latest_t)) * 1000) AS t,
    CASE WHEN n.t IS NULL THEN d.latest_v ELSE n.v END AS v,
    CASE WHEN n.t IS NULL THEN d.latest_j ELSE n.j END AS j,
    CASE WHEN n.t IS NULL THEN d.latest_q ELSE n.q END AS q
  FROM outpost.datapoints d
  LEFT JOIN LATERAL (SELECT max(x.minute) AS m FROM outpost.rollup_dirty x WHERE x.series = d.series) dirty ON true
  LEFT JOIN LATERAL (
    SELECT r.t, r.v, r.j, r.q FROM outpost.readings r
    WHERE r.series = d.series AND dirty.m IS NOT NULL AND r.t >= dirty.m AND (d.latest_t IS NULL OR r.t >= d.latest_t)
    ORDER BY r.t DESC LIMIT 1
  ) n ON true`;

/** Datapoints with their newest reading, by gateway then id in byte order (as the embedded store sorts). */
export async function datapoints(db: Database, gateway?: string): Promise<CentralDatapoint[]> {
  const { rows } = await db.read(() =>
    gateway === undefined
      ? db.query<DatapointRow>(`${DATAPOINTS} ORDER BY d.gateway COLLATE "C", d.id COLLATE "C"`)
      : db.query<DatapointRow>({
          name: 'outpost-gateway-datapoints',
          text: `${DATAPOINTS} WHERE d.gateway = $1 ORDER BY d.id COLLATE "C"`,
          values: [gateway],
        }),
  );
  return rows.map((r) => {
    const latest = r.t === null ? undefined : decodeValue({ t: r.t, v: r.v, j: r.j, q: r.q });
    return { gateway: r.gateway, id: r.id, type: typeOfValue(latest?.v), ...(latest ? { latest } : {}) };
  });
}

export async function latest(db: Database, gateway: string, id: string): Promise<StoredValue | undefined> {
  const { rows } = await db.read(() =>
    db.query<DatapointRow>({ name: 'outpost-latest', text: `${DATAPOINTS} WHERE d.gateway = $1 AND d.id = $2`, values: [gateway, id] }),
  );
  const r = rows[0];
  return r && r.t !== null ? decodeValue({ t: r.t, v: r.v, j: r.j, q: r.q }) : undefined;
}

/** Raw readings of a range (inclusive), as storage/level/read.ts `queryRaw` bounds it. */
export async function queryRange(db: Database, catalog: Catalog, gateway: string, id: string, range: RangeQuery = {}): Promise<StoredValue[]> {
  const limit = Math.min(range.limit ?? DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT);
  const from = Math.max(0, range.from ?? 0);
  const to = Math.min(range.to ?? MAX_TIME, MAX_TIME);
  if (to < from || limit <= 0) return [];
  return db.read(async () => {
    const series = await catalog.lookup(gateway, id);
    if (series === undefined) return [];
    const order = range.order === 'desc' ? 'DESC' : 'ASC';
    const { rows } = await db.query<ValueRow>(
      `SELECT round(date_part('epoch', t) * 1000) AS t, v, j, q FROM outpost.readings
       WHERE series = $1 AND t >= to_timestamp($2) AND t <= to_timestamp($3) ORDER BY t ${order} LIMIT $4`,
      [series, from / 1000, to / 1000, limit],
    );
    return rows.map(decodeValue);
  });
}

export async function countReadings(db: Database, gateway: string, id?: string): Promise<number> {
  const { rows } = await db.read(() =>
    db.query<{ n: string }>(
      `SELECT count(*) AS n FROM outpost.readings
       WHERE series = ANY (ARRAY(SELECT series FROM outpost.datapoints WHERE gateway = $1 AND ($2::text IS NULL OR id = $2)))`,
      [gateway, id ?? null],
    ),
  );
  return num(rows[0]?.n);
}

export async function countSeqs(db: Database, gateway: string): Promise<number> {
  const { rows } = await db.read(() =>
    db.query<{ n: string }>('SELECT coalesce(sum(last_seq - first_seq + 1), 0) AS n FROM outpost.seq_runs WHERE gateway = $1', [gateway]),
  );
  return num(rows[0]?.n);
}
