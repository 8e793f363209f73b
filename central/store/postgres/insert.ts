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
 * Takes the group's seqs: the ones this statement inserted are new, every other one was stored
 * before (or by a concurrent transaction that committed first: ON CONFLICT waits for it). The
 * pairs go sorted by (gateway, seq), so two transactions taking overlapping ones wait for each
 * other in one direction only and never deadlock.
 */
const CLAIM_SEQS = `INSERT INTO outpost.seqs (gateway, seq) SELECT * FROM unnest($1::text[], $2::int8[]) ON CONFLICT DO NOTHING RETURNING gateway, seq`;

/**
 * Everything else of the group in one statement (one round trip): the readings (a value at the
 * (series, t) of a stored one replaces it, per the contract; an identical one is left alone),
 * the dirty minutes for the rollup refresh (once per (series, minute)), each datapoint's newest
 * reading (once per series), a receipt per batch. Rows arrive sorted by (series, t), so
 * concurrent transactions lock rows in one order.
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
    last_seen = greatest(d.last_seen, l.seen),
    type = CASE WHEN d.latest_t IS NULL OR l.t >= d.latest_t THEN l.type ELSE d.type END,
    latest_v = CASE WHEN d.latest_t IS NULL OR l.t >= d.latest_t THEN l.v ELSE d.latest_v END,
    latest_j = CASE WHEN d.latest_t IS NULL OR l.t >= d.latest_t THEN l.j ELSE d.latest_j END,
    latest_q = CASE WHEN d.latest_t IS NULL OR l.t >= d.latest_t THEN l.q ELSE d.latest_q END,
    latest_t = CASE WHEN d.latest_t IS NULL OR l.t >= d.latest_t THEN l.t ELSE d.latest_t END
  FROM (
    SELECT s, to_timestamp(ts) AS t, v, j, q, type, to_timestamp(seen) AS seen
    FROM unnest($6::int4[], $7::float8[], $8::float8[], $9::jsonb[], $10::text[], $11::text[], $12::float8[]) AS u(s, ts, v, j, q, type, seen)
  ) l
  WHERE d.series = l.s
)
INSERT INTO outpost.receipts (gateway, at, via, lane, key, stored, duplicates)
SELECT g, to_timestamp(at), via, lane, key, stored, duplicates
FROM unnest($13::text[], $14::float8[], $15::text[], $16::text[], $17::text[], $18::int4[], $19::int4[]) AS u(g, at, via, lane, key, stored, duplicates)`;

/** One batch of the contract's insert: a gateway's records and their receipt. */
export interface InsertBatch {
  gateway: string;
  records: readonly IngestRecord[];
  receipt: Receipt;
}

interface Row {
  series: number;
  t: number;
  v: number | null;
  j: string | null;
  q: string | null;
  type: DatapointType;
}

/** The contract's checks of a batch, before it waits for a transaction: a bad one is refused alone. */
export function checkBatch(batch: InsertBatch): void {
  checkGateway(batch.gateway);
  for (const r of batch.records) checkRecord(r);
}

const pairKey = (gateway: string, seq: number): string => `${gateway}\n${seq}`;

/**
 * The contract's insert (central/store/contract.ts) of any number of batches, from any
 * gateways, in one transaction (group-commit.ts gathers them): the seqs are claimed first
 * (`seqs`, primary key (gateway, seq), ON CONFLICT DO NOTHING), and only the records whose seq
 * this transaction claimed — and those without a seq — are written; the commit makes
 * readings, seq marks, receipts and satellite messages durable together. Any number of
 * processes may insert copies of the same batch at once: each seq is claimed by exactly one
 * transaction, the others wait for its commit and find it taken. Within the group the first
 * batch holding a seq has it, as if the batches had committed one after the other.
 */
export async function insertBatches(ctx: InsertContext, batches: readonly InsertBatch[]): Promise<InsertResult[]> {
  // The first copy of each seq within the group; records without a seq all go on.
  const seen = new Map<string, Set<number>>();
  const firsts = batches.map(({ gateway, records }) => {
    let taken = seen.get(gateway);
    if (!taken) seen.set(gateway, (taken = new Set()));
    const out: IngestRecord[] = [];
    for (const r of records) {
      if (r.seq !== undefined) {
        if (taken.has(r.seq)) continue;
        taken.add(r.seq);
      }
      out.push(r);
    }
    return out;
  });
  const claimGateways: string[] = [];
  const claimSeqs: number[] = [];
  for (const gateway of [...seen.keys()].sort()) {
    for (const seq of [...seen.get(gateway)!].sort((a, b) => a - b)) {
      claimGateways.push(gateway);
      claimSeqs.push(seq);
    }
  }
  const times = firsts.flatMap((records) => records.map((r) => r.t));
  const registered = new Map<string, Map<string, number>>();
  const results = await ctx.db.write(
    'insert readings',
    async (c) => {
      registered.clear();
      const gateways = [...seen.keys()].sort();
      for (const gateway of gateways) {
        const at = Math.min(...batches.filter((b) => b.gateway === gateway).map((b) => b.receipt.at));
        await ctx.catalog.registerGateway(c, gateway, at);
      }
      let fresh = firsts;
      if (claimSeqs.length > 0) {
        const { rows } = await c.query<{ gateway: string; seq: string }>({ name: 'outpost-claim-seqs', text: CLAIM_SEQS, values: [claimGateways, claimSeqs] });
        const claimed = new Set(rows.map((r) => pairKey(r.gateway, Number(r.seq))));
        fresh = firsts.map((records, i) => records.filter((r) => r.seq === undefined || claimed.has(pairKey(batches[i]!.gateway, r.seq))));
      }
      for (const gateway of gateways) {
        const ids = new Set<string>();
        fresh.forEach((records, i) => {
          if (batches[i]!.gateway === gateway) for (const r of records) ids.add(r.id);
        });
        const at = Math.min(...batches.filter((b) => b.gateway === gateway).map((b) => b.receipt.at));
        registered.set(gateway, await ctx.catalog.resolve(c, gateway, [...ids].sort(), at));
      }
      // One row per (series, t): the last record wins, as the embedded store writes batches in order.
      const byKey = new Map<string, Row>();
      const seenAt = new Map<number, number>();
      fresh.forEach((records, i) => {
        const { gateway, receipt } = batches[i]!;
        const series = registered.get(gateway)!;
        for (const r of records) {
          const s = series.get(r.id)!;
          byKey.set(`${s}:${r.t}`, { series: s, t: r.t, ...encodeValue(r.v), q: r.q ?? null, type: typeOfValue(r.v) });
          seenAt.set(s, Math.max(seenAt.get(s) ?? 0, receipt.at));
        }
      });
      const rows = [...byKey.values()].sort((a, b) => a.series - b.series || a.t - b.t);
      const newest = rows.filter((r, i) => rows[i + 1]?.series !== r.series);
      const counts = batches.map((b, i) => ({ stored: fresh[i]!.length, duplicates: b.records.length - fresh[i]!.length }));
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
          newest.map((r) => seenAt.get(r.series)! / 1000),
          batches.map((b) => b.gateway),
          batches.map((b) => b.receipt.at / 1000),
          batches.map((b) => b.receipt.via),
          batches.map((b) => b.receipt.lane),
          batches.map((b) => b.receipt.key ?? null),
          counts.map((n) => n.stored),
          counts.map((n) => n.duplicates),
        ],
      });
      for (const b of batches) if (b.receipt.satellite) await upsertSatellite(c, b.gateway, b.receipt.satellite);
      return counts;
    },
    { idempotent: true, prepare: () => ctx.partitions.ensureFor(times), onNoPartition: () => ctx.partitions.repair(times) },
  );
  for (const [gateway, series] of registered) ctx.catalog.commit(gateway, series);
  return results;
}
