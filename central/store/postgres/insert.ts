import { checkGateway, checkRecordFields } from '../level.js';
import type { InsertResult, Receipt } from '../contract.js';
import type { RecordColumns } from '../record-columns.js';
import type { Catalog } from './catalog.js';
import { encodeValue } from './codec.js';
import type { Database } from './db.js';
import { type CopyRows, copyRows } from './copy.js';
import { type DirtyMemo, readGeneration } from './dirty-minutes.js';
import { upsertSatellite } from './gateway-state.js';
import type { Partitions } from './partitions.js';
import { runsOf, SEQ_RUNS_TARGET, type SeqRun, seqRunRow, storedRuns } from './seq-runs.js';

/** The rollups' finest bucket (date_bin of 60 s from the epoch, as the merge path's SQL). */
const MINUTE_MS = 60_000;

export interface InsertContext {
  db: Database;
  catalog: Catalog;
  partitions: Partitions;
  /** Groups committed by each path, and copy attempts refused for a stored key (tests, diagnosis). */
  paths: WritePathCounts;
  /** The dirty minutes this process has written in the current generation (dirty-minutes.ts). */
  dirty: DirtyMemo;
}

export interface WritePathCounts {
  copy: number;
  merge: number;
  /** Copy attempts that met a stored seq or (series, t) and were written again by the merge path. */
  copyRefused: number;
  /** Merges run again: a concurrent transaction committed some of the same seqs first. */
  mergeRetried: number;
}

/** A receipt per batch, numbered from parameter `$first`: the tail of both write paths. */
const receipts = (first: number): string => {
  const p = (k: number): string => `$${first + k}`;
  return `INSERT INTO outpost.receipts (gateway, at, via, lane, key, stored, duplicates)
SELECT g, to_timestamp(at), via, lane, key, stored, duplicates
FROM unnest(${p(0)}::text[], ${p(1)}::float8[], ${p(2)}::text[], ${p(3)}::text[], ${p(4)}::text[], ${p(5)}::int4[], ${p(6)}::int4[]) AS u(g, at, via, lane, key, stored, duplicates)`;
};

/**
 * The merge path's statement (one round trip): the readings (a value at the (series, t) of a
 * stored one replaces it, per the contract; an identical one is left alone), the dirty minutes
 * of the rows it changed (once per (series, minute)), then the receipts. Rows arrive sorted by
 * (series, t), so concurrent transactions lock rows in one order. The dirty minutes feed the
 * rollup refresh and the datapoints' newest readings (query.ts DATAPOINTS): no insert updates
 * a datapoint row.
 */
const WRITE_MERGING = `WITH w AS (
  INSERT INTO outpost.readings AS r (series, t, v, j, q)
  SELECT s, to_timestamp(ts), v, j, q FROM unnest($1::int4[], $2::float8[], $3::float8[], $4::jsonb[], $5::text[]) AS u(s, ts, v, j, q)
  ON CONFLICT (series, t) DO UPDATE SET v = excluded.v, j = excluded.j, q = excluded.q
    WHERE (r.v, r.j, r.q) IS DISTINCT FROM (excluded.v, excluded.j, excluded.q)
  RETURNING r.series, r.t
), dirty AS (
  INSERT INTO outpost.rollup_dirty (series, minute, generation)
  SELECT DISTINCT series, date_bin(interval '60 seconds', t, timestamptz 'epoch'), $6::int8 FROM w
)
${receipts(7)}`;

/** The copy path's statement, after its COPYs. */
const RECEIPTS = receipts(1);

/** One batch of the contract's insert: a gateway's records (as columns) and their receipt. */
export interface InsertBatch {
  gateway: string;
  records: RecordColumns;
  receipt: Receipt;
}

/** The contract's checks of a batch, before it waits for a transaction: a bad one is refused alone. */
export function checkBatch(batch: InsertBatch): void {
  checkGateway(batch.gateway);
  const { records } = batch;
  for (let i = 0; i < records.length; i++) checkRecordFields(records.id(i), records.t(i), records.seq(i));
}

/** PostgreSQL's unique_violation: a COPY met a (series, t) that is already stored. */
const UNIQUE_VIOLATION = '23505';
/** exclusion_violation: a run of seqs overlaps a stored one (seq-runs.ts). */
const EXCLUSION_VIOLATION = '23P01';
/** Merge attempts that may meet a run another transaction committed after this one read the stored runs. */
const MERGE_ATTEMPTS = 5;

const sqlState = (err: unknown): unknown => (err as { code?: unknown } | null)?.code;

/** How a group is written: see insertBatches. */
type WritePath = 'copy' | 'merge';

/**
 * The contract's insert (central/store/contract.ts) of any number of batches, from any
 * gateways, in one transaction (group-commit.ts gathers them). Readings, seq marks, receipts
 * and satellite messages become durable together at the commit. Within the group the first
 * batch holding a seq has it, as if the batches had committed one after the other. Two paths:
 *
 * - **copy** (every record has a seq, the usual case): the runs of the group's seqs
 *   (seq-runs.ts), its readings and dirty minutes are loaded with binary COPY (copy.ts), which
 *   refuses the whole group if any seq or (series, t) is already stored. The refusal rolls the
 *   transaction back and the group is written again by the merge path. A copy of the same batch
 *   inserted by another process at the same moment makes our COPY wait for its commit, then
 *   fail the same way.
 * - **merge**: the stored runs that overlap the group's are read; the seqs outside them are new
 *   and their runs are written, and only the records with a new seq — and those without a
 *   seq — are merged into the readings. A run another transaction commits between the read
 *   and the write makes the write fail (the exclusion constraint waits for that transaction,
 *   then refuses): the merge runs again and reads it.
 *
 * Any number of processes may insert copies of the same batch at once: each seq is stored by
 * exactly one transaction.
 */
export async function insertBatches(ctx: InsertContext, batches: readonly InsertBatch[]): Promise<InsertResult[]> {
  const group = firstCopies(batches);
  const copyable = batches.every((b) => b.records.allHaveSeqs);
  if (copyable) {
    try {
      return await writeGroup(ctx, batches, group, 'copy');
    } catch (err) {
      const state = sqlState(err);
      if (state !== UNIQUE_VIOLATION && state !== EXCLUSION_VIOLATION) throw err;
      ctx.paths.copyRefused++;
    }
  }
  for (let attempt = 1; ; attempt++) {
    try {
      return await writeGroup(ctx, batches, group, 'merge');
    } catch (err) {
      if (sqlState(err) !== EXCLUSION_VIOLATION || attempt >= MERGE_ATTEMPTS) throw err;
      ctx.paths.mergeRetried++;
    }
  }
}

interface Group {
  /** Per batch, the indexes of its records whose seq no earlier batch of the group holds. */
  firsts: Uint32Array[];
  /** Each gateway's seqs in the group, ascending. */
  seqs: Map<string, number[]>;
  /** Their runs, by gateway, then seq. */
  runs: SeqRun[];
  gateways: string[];
  /** Each gateway's earliest receipt time in the group: when a gateway or datapoint it registers was first seen. */
  firstSeen: Map<string, number>;
}

function firstCopies(batches: readonly InsertBatch[]): Group {
  // The first copy of each seq within the group; records without a seq all go on.
  const seen = new Map<string, Set<number>>();
  const firsts = batches.map(({ gateway, records }) => {
    let taken = seen.get(gateway);
    if (!taken) seen.set(gateway, (taken = new Set()));
    const out = new Uint32Array(records.length);
    let n = 0;
    for (let i = 0; i < records.length; i++) {
      const seq = records.seq(i);
      if (seq !== undefined) {
        if (taken.has(seq)) continue;
        taken.add(seq);
      }
      out[n++] = i;
    }
    return out.subarray(0, n);
  });
  const gateways = [...seen.keys()].sort();
  const seqs = new Map<string, number[]>();
  const runs: SeqRun[] = [];
  for (const gateway of gateways) {
    const sorted = [...seen.get(gateway)!].sort((a, b) => a - b);
    seqs.set(gateway, sorted);
    runsOf(gateway, sorted, runs);
  }
  const firstSeen = new Map<string, number>();
  for (const { gateway, receipt } of batches) firstSeen.set(gateway, Math.min(firstSeen.get(gateway) ?? receipt.at, receipt.at));
  return { firsts, seqs, runs, gateways, firstSeen };
}

/** The times of the group's records: the partitions they need. */
function* groupTimes(batches: readonly InsertBatch[], group: Group): Generator<number> {
  for (const [b, indexes] of group.firsts.entries()) for (const i of indexes) yield batches[b]!.records.t(i);
}

async function writeGroup(ctx: InsertContext, batches: readonly InsertBatch[], group: Group, path: WritePath): Promise<InsertResult[]> {
  const registered = new Map<string, Map<string, number>>();
  let dirty: Dirty | undefined;
  const results = await ctx.db.write(
    'insert readings',
    async (c) => {
      registered.clear();
      dirty = undefined;
      const generation = await readGeneration(c);
      await ctx.catalog.registerGateways(c, group.firstSeen);
      let fresh = group.firsts;
      if (path === 'copy') {
        if (group.runs.length > 0) await copyRows(c, SEQ_RUNS_TARGET, group.runs, seqRunRow);
      } else if (group.runs.length > 0) {
        const stored = await storedRuns(c, group.runs);
        fresh = group.firsts.map((indexes, b) => {
          const { gateway, records } = batches[b]!;
          return indexes.filter((i) => {
            const seq = records.seq(i);
            return seq === undefined || !stored.has(gateway, seq);
          });
        });
        const runs: SeqRun[] = [];
        for (const [gateway, seqs] of group.seqs)
          runsOf(
            gateway,
            seqs.filter((seq) => !stored.has(gateway, seq)),
            runs,
          );
        if (runs.length > 0) await copyRows(c, SEQ_RUNS_TARGET, runs, seqRunRow);
      }
      for (const [gateway, s] of await ctx.catalog.resolveAll(c, wantedIds(batches, group, fresh))) registered.set(gateway, s);
      const rows = groupRows(batches, fresh, registered);
      const counts = batches.map((b, i) => ({ stored: fresh[i]!.length, duplicates: b.records.length - fresh[i]!.length }));
      const tail = [
        batches.map((b) => b.gateway),
        batches.map((b) => b.receipt.at / 1000),
        batches.map((b) => b.receipt.via),
        batches.map((b) => b.receipt.lane),
        batches.map((b) => b.receipt.key ?? null),
        counts.map((n) => n.stored),
        counts.map((n) => n.duplicates),
      ];
      if (path === 'copy') {
        if (rows.order.length > 0) {
          await copyRows(c, 'outpost.readings (series, t, v, j, q)', rows.order, (out, k) => readingRow(out, batches, rows, k));
          dirty = dirtyMinutes(rows, generation, ctx.dirty);
          const { entries } = dirty;
          if (entries.length > 0) await copyRows(c, 'outpost.rollup_dirty (series, minute, generation)', entries, (out, e) => dirtyRow(out, e, generation));
        }
        await c.query({ name: 'outpost-receipts', text: RECEIPTS, values: tail });
      } else {
        await c.query({ name: 'outpost-write-merging', text: WRITE_MERGING, values: [...mergeColumns(batches, rows), generation, ...tail] });
      }
      for (const b of batches) if (b.receipt.satellite) await upsertSatellite(c, b.gateway, b.receipt.satellite);
      return counts;
    },
    {
      idempotent: true,
      bounded: true,
      ingest: true,
      prepare: () => ctx.partitions.ensureFor(groupTimes(batches, group)),
      onNoPartition: () => ctx.partitions.repair(groupTimes(batches, group)),
    },
  );
  for (const [gateway, series] of registered) ctx.catalog.commit(gateway, series);
  if (dirty) ctx.dirty.remember(dirty.generation, dirty.entries);
  ctx.paths[path]++;
  return results;
}

/** Each gateway's datapoint ids among the records to write, and when the gateway was first seen in the group. */
function wantedIds(batches: readonly InsertBatch[], group: Group, fresh: readonly Uint32Array[]): Map<string, { ids: Set<string>; at: number }> {
  const wanted = new Map(group.gateways.map((gateway) => [gateway, { ids: new Set<string>(), at: group.firstSeen.get(gateway)! }]));
  fresh.forEach((indexes, b) => {
    const { gateway, records } = batches[b]!;
    const { ids } = wanted.get(gateway)!;
    for (const i of indexes) ids.add(records.id(i));
  });
  return wanted;
}

/**
 * The group's rows as columns: row k is record `record[k]` of batch `batch[k]`, in series
 * `series[k]` at `t[k]`; `order` lists the rows to write, one per (series, t), sorted by
 * (series, t).
 */
interface Rows {
  series: Int32Array;
  t: Float64Array;
  batch: Uint32Array;
  record: Uint32Array;
  order: Uint32Array;
}

function groupRows(batches: readonly InsertBatch[], fresh: readonly Uint32Array[], registered: ReadonlyMap<string, ReadonlyMap<string, number>>): Rows {
  let n = 0;
  for (const indexes of fresh) n += indexes.length;
  const rows: Rows = { series: new Int32Array(n), t: new Float64Array(n), batch: new Uint32Array(n), record: new Uint32Array(n), order: new Uint32Array(n) };
  let k = 0;
  fresh.forEach((indexes, b) => {
    const { gateway, records } = batches[b]!;
    const series = registered.get(gateway)!;
    for (const i of indexes) {
      rows.series[k] = series.get(records.id(i))!;
      rows.t[k] = records.t(i);
      rows.batch[k] = b;
      rows.record[k] = i;
      rows.order[k] = k;
      k++;
    }
  });
  // Sorted by (series, t, arrival) and the last of each (series, t) kept: the last record wins,
  // as the embedded store writes batches in order. Typed arrays rather than an object per row:
  // this runs for every record the receiver takes, and what lives through a commit is copied
  // by every scavenge meanwhile.
  const { series, t } = rows;
  rows.order.sort((a, b) => series[a]! - series[b]! || t[a]! - t[b]! || a - b);
  let kept = 0;
  for (let m = 0; m < n; m++) {
    const r = rows.order[m]!;
    const next = m + 1 < n ? rows.order[m + 1]! : -1;
    if (next < 0 || series[next] !== series[r] || t[next] !== t[r]) rows.order[kept++] = r;
  }
  rows.order = rows.order.subarray(0, kept);
  return rows;
}

/** Row k's value as the `v` and `j` columns, and its quality. */
function rowValue(batches: readonly InsertBatch[], rows: Rows, k: number): { v: number | null; j: string | null; q: string | null } {
  const records = batches[rows.batch[k]!]!.records;
  const i = rows.record[k]!;
  const n = records.number(i);
  const { v, j } = Number.isNaN(n) ? encodeValue(records.value(i)) : { v: n, j: null };
  return { v, j, q: records.quality(i) ?? null };
}

/** The merge path's parameters: series, t (s), v, j, q of each row. */
function mergeColumns(batches: readonly InsertBatch[], rows: Rows): unknown[][] {
  const out: [number[], number[], (number | null)[], (string | null)[], (string | null)[]] = [[], [], [], [], []];
  for (const k of rows.order) {
    const { v, j, q } = rowValue(batches, rows, k);
    out[0].push(rows.series[k]!);
    out[1].push(rows.t[k]! / 1000);
    out[2].push(v);
    out[3].push(j);
    out[4].push(q);
  }
  return out;
}

function readingRow(out: CopyRows, batches: readonly InsertBatch[], rows: Rows, k: number): void {
  const records = batches[rows.batch[k]!]!.records;
  const i = rows.record[k]!;
  out.row(5).int4(rows.series[k]!).readingTime(rows.t[k]!);
  const n = records.number(i);
  if (Number.isNaN(n)) {
    const { v, j } = encodeValue(records.value(i));
    out.float8(v).jsonb(j);
  } else out.float8(n).null();
  out.text(records.quality(i) ?? null);
}

function dirtyRow(out: CopyRows, e: { series: number; minute: number }, generation: number): void {
  out.row(3).int4(e.series).timestamptz(e.minute).int8(generation);
}

/** The dirty minutes one transaction writes, to remember after its commit. */
interface Dirty {
  generation: number;
  entries: Array<{ series: number; minute: number }>;
}

/**
 * The rollup refresh's dirty minutes of rows sorted by (series, t), once per (series, minute),
 * leaving out those already committed in this generation (dirty-minutes.ts).
 */
function dirtyMinutes(rows: Rows, generation: number, memo: DirtyMemo): Dirty {
  const entries: Dirty['entries'] = [];
  let series = -1;
  let minute = -1;
  for (const k of rows.order) {
    const t = rows.t[k]!;
    const m = t - (t % MINUTE_MS);
    if (rows.series[k] === series && m === minute) continue;
    series = rows.series[k]!;
    minute = m;
    if (!memo.written(generation, series, minute)) entries.push({ series, minute });
  }
  return { generation, entries };
}
