import { checkGateway, checkRecord } from '../level.js';
import { typeOfValue, type DatapointType, type IngestRecord, type InsertResult, type Receipt } from '../contract.js';
import type { Catalog } from './catalog.js';
import { encodeValue } from './codec.js';
import type { Database } from './db.js';
import { upsertSatellite } from './gateway-state.js';
import type { Partitions } from './partitions.js';

export interface InsertContext {
  db: Database;
  catalog: Catalog;
  partitions: Partitions;
}

/**
 * Takes the batch's seqs: the ones this statement inserted are new, every other one was stored
 * before (or by a concurrent transaction that committed first: ON CONFLICT waits for it). The
 * seqs go in ascending order, so two transactions taking overlapping ranges wait for each
 * other in one direction only and never deadlock.
 */
const CLAIM_SEQS = `INSERT INTO outpost.seqs (gateway, seq) SELECT $1, unnest($2::int8[]) ON CONFLICT DO NOTHING RETURNING seq`;

/**
 * Everything else of the batch in one statement (one round trip): the readings (a value at the
 * (series, t) of a stored one replaces it, per the contract; an identical one is left alone),
 * the dirty minutes for the rollup refresh, each datapoint's newest reading, the receipt.
 * Rows arrive sorted by (series, t), so concurrent batches lock rows in one order.
 */
const WRITE = `WITH w AS (
  INSERT INTO outpost.readings AS r (series, t, v, j, q)
  SELECT s, to_timestamp(ts), v, j, q FROM unnest($1::int4[], $2::float8[], $3::float8[], $4::jsonb[], $5::text[]) AS u(s, ts, v, j, q)
  ON CONFLICT (series, t) DO UPDATE SET v = excluded.v, j = excluded.j, q = excluded.q
    WHERE (r.v, r.j, r.q) IS DISTINCT FROM (excluded.v, excluded.j, excluded.q)
  RETURNING r.series, r.t
), dirty AS (
  INSERT INTO outpost.rollup_dirty (series, minute)
  SELECT DISTINCT series, date_bin(interval '60 seconds', t, timestamptz 'epoch') FROM w
), newest AS (
  UPDATE outpost.datapoints d SET
    last_seen = greatest(d.last_seen, to_timestamp($12)),
    type = CASE WHEN d.latest_t IS NULL OR l.t >= d.latest_t THEN l.type ELSE d.type END,
    latest_v = CASE WHEN d.latest_t IS NULL OR l.t >= d.latest_t THEN l.v ELSE d.latest_v END,
    latest_j = CASE WHEN d.latest_t IS NULL OR l.t >= d.latest_t THEN l.j ELSE d.latest_j END,
    latest_q = CASE WHEN d.latest_t IS NULL OR l.t >= d.latest_t THEN l.q ELSE d.latest_q END,
    latest_t = CASE WHEN d.latest_t IS NULL OR l.t >= d.latest_t THEN l.t ELSE d.latest_t END
  FROM (
    SELECT s, to_timestamp(ts) AS t, v, j, q, type
    FROM unnest($6::int4[], $7::float8[], $8::float8[], $9::jsonb[], $10::text[], $11::text[]) AS u(s, ts, v, j, q, type)
  ) l
  WHERE d.series = l.s
)
INSERT INTO outpost.receipts (gateway, at, via, lane, key, stored, duplicates)
VALUES ($13, to_timestamp($12), $14, $15, $16, $17, $18)`;

interface Row {
  series: number;
  t: number;
  v: number | null;
  j: string | null;
  q: string | null;
  type: DatapointType;
}

/**
 * The contract's insert (central/store/contract.ts) in one transaction: the seqs of the batch
 * are claimed first (`seqs`, primary key (gateway, seq), ON CONFLICT DO NOTHING), and only the
 * records whose seq this transaction claimed — and those without a seq — are written; the
 * commit makes readings, seq marks, receipt and satellite message durable together. Any number
 * of processes may insert copies of the same batch at once: each seq is claimed by exactly
 * one transaction, the others wait for its commit and find it taken.
 */
export async function insertReadings(ctx: InsertContext, gateway: string, records: readonly IngestRecord[], receipt: Receipt): Promise<InsertResult> {
  checkGateway(gateway);
  for (const r of records) checkRecord(r);
  // The first copy of each seq within the batch; records without a seq all go on.
  const firsts: IngestRecord[] = [];
  const seen = new Set<number>();
  for (const r of records) {
    if (r.seq !== undefined) {
      if (seen.has(r.seq)) continue;
      seen.add(r.seq);
    }
    firsts.push(r);
  }
  const seqs = [...seen].sort((a, b) => a - b);
  const times = firsts.map((r) => r.t);
  let registered = new Map<string, number>();
  const result = await ctx.db.write(
    'insert readings',
    async (c) => {
      await ctx.catalog.registerGateway(c, gateway, receipt.at);
      let fresh = firsts;
      if (seqs.length > 0) {
        const claimed = new Set(
          (await c.query<{ seq: string }>({ name: 'outpost-claim-seqs', text: CLAIM_SEQS, values: [gateway, seqs] })).rows.map((r) => Number(r.seq)),
        );
        fresh = firsts.filter((r) => r.seq === undefined || claimed.has(r.seq));
      }
      registered = await ctx.catalog.resolve(c, gateway, [...new Set(fresh.map((r) => r.id))].sort(), receipt.at);
      // One row per (series, t): the last record of the batch wins, as the embedded store writes a batch in order.
      const byKey = new Map<string, Row>();
      for (const r of fresh) {
        const series = registered.get(r.id)!;
        byKey.set(`${series}:${r.t}`, { series, t: r.t, ...encodeValue(r.v), q: r.q ?? null, type: typeOfValue(r.v) });
      }
      const rows = [...byKey.values()].sort((a, b) => a.series - b.series || a.t - b.t);
      const newest = rows.filter((r, i) => rows[i + 1]?.series !== r.series);
      const stored = fresh.length;
      await c.query({
        name: 'outpost-write-readings',
        text: WRITE,
        values: [
          rows.map((r) => r.series),
          rows.map((r) => r.t / 1000),
          rows.map((r) => r.v),
          rows.map((r) => r.j),
          rows.map((r) => r.q),
          newest.map((r) => r.series),
          newest.map((r) => r.t / 1000),
          newest.map((r) => r.v),
          newest.map((r) => r.j),
          newest.map((r) => r.q),
          newest.map((r) => r.type),
          receipt.at / 1000,
          gateway,
          receipt.via,
          receipt.lane,
          receipt.key ?? null,
          stored,
          records.length - stored,
        ],
      });
      if (receipt.satellite) await upsertSatellite(c, gateway, receipt.satellite);
      return { stored, duplicates: records.length - stored };
    },
    { idempotent: true, prepare: () => ctx.partitions.ensureFor(times), onNoPartition: () => ctx.partitions.repair(times) },
  );
  ctx.catalog.commit(gateway, registered);
  return result;
}
