import type { CopyRows } from './copy.js';
import type { Database, PoolClient } from './db.js';
import { LOCK_NAMESPACE, LOCK_SEQ_COMPACTION } from './schema.js';

/**
 * The outbox seqs a gateway has stored, as runs: `outpost.seq_runs (gateway, first_seq,
 * last_seq)` holds one row per run of consecutive seqs a transaction stored, and the exclusion
 * constraint `seq_runs_disjoint` (btree_gist: gateway equal, seq ranges overlapping) refuses a
 * run that overlaps a stored one, as a primary key on (gateway, seq) refuses a stored seq. A
 * gateway numbers its outbox without gaps, so a transaction of 8,000 records from 80 gateways
 * writes ~80 rows here where a row per seq wrote 8,000: those were 4.6 µs of PostgreSQL's CPU
 * per record, more than the reading itself (bench/README.md, "Seqs as runs").
 */
export interface SeqRun {
  gateway: string;
  first: number;
  last: number;
}

/** The runs of a gateway's seqs, given ascending and distinct. */
export function runsOf(gateway: string, seqs: readonly number[], out: SeqRun[] = []): SeqRun[] {
  let i = 0;
  while (i < seqs.length) {
    const first = seqs[i]!;
    let last = first;
    while (i + 1 < seqs.length && seqs[i + 1] === last + 1) last = seqs[++i]!;
    out.push({ gateway, first, last });
    i++;
  }
  return out;
}

/** The COPY row of a run (`outpost.seq_runs (gateway, first_seq, last_seq)`). */
export function seqRunRow(out: CopyRows, run: SeqRun): void {
  out.row(3).text(run.gateway).int8(run.first).int8(run.last);
}

export const SEQ_RUNS_TARGET = 'outpost.seq_runs (gateway, first_seq, last_seq)';

/** The stored runs that overlap any of the given ones (through the exclusion constraint's GiST index). */
const OVERLAPPING = `SELECT r.gateway, r.first_seq, r.last_seq
FROM unnest($1::text[], $2::int8[], $3::int8[]) AS u(g, lo, hi)
JOIN outpost.seq_runs r ON r.gateway = u.g AND int8range(r.first_seq, r.last_seq, '[]') && int8range(u.lo, u.hi, '[]')
ORDER BY r.first_seq`;

/**
 * Which seqs are stored already: answers, per gateway, the stored runs overlapping `runs`.
 * Read in the caller's transaction: a run another transaction commits after this read is
 * caught by the exclusion constraint when this one writes its own.
 */
export async function storedRuns(c: PoolClient, runs: readonly SeqRun[]): Promise<StoredSeqs> {
  const { rows } = await c.query<{ gateway: string; first_seq: string; last_seq: string }>({
    name: 'outpost-stored-runs',
    text: OVERLAPPING,
    values: [runs.map((r) => r.gateway), runs.map((r) => r.first), runs.map((r) => r.last)],
  });
  const byGateway = new Map<string, number[]>();
  // A run overlapping two of the group's comes twice: harmless to the search below.
  for (const r of rows) {
    let flat = byGateway.get(r.gateway);
    if (!flat) byGateway.set(r.gateway, (flat = []));
    flat.push(Number(r.first_seq), Number(r.last_seq));
  }
  return new StoredSeqs(byGateway);
}

/**
 * Stored runs per gateway as [first, last, first, last, …] in ascending order (the query's;
 * disjoint runs sorted by first are sorted by last too), answering whether a seq is among them.
 */
export class StoredSeqs {
  constructor(private readonly runs: ReadonlyMap<string, readonly number[]>) {}

  has(gateway: string, seq: number): boolean {
    const runs = this.runs.get(gateway);
    if (!runs) return false;
    // The last run that starts at or before seq.
    let lo = 0;
    let hi = runs.length / 2 - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (runs[2 * mid]! <= seq) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found >= 0 && seq <= runs[2 * found + 1]!;
  }
}

/**
 * What one compaction transaction joins at most: a batch resent meanwhile whose run overlaps
 * a run being joined waits for that transaction, so it must stay short (a gateway of a year
 * without compaction: 3 million runs; a single gateway with more than this goes alone).
 */
const COMPACT_GATEWAYS = 100;
const COMPACT_RUNS = 20_000;

/**
 * Each gateway's adjacent runs as spans (first, last, runs joined) of two runs or more: a run
 * starts a new span unless it begins right after the one before it.
 */
const ADJACENT_SPANS = `WITH ordered AS (
  SELECT gateway, first_seq, last_seq,
    CASE WHEN first_seq = lag(last_seq) OVER w + 1 THEN 0 ELSE 1 END AS starts
  FROM outpost.seq_runs WHERE gateway = ANY($1::text[])
  WINDOW w AS (PARTITION BY gateway ORDER BY first_seq)
), numbered AS (
  SELECT gateway, first_seq, last_seq, sum(starts) OVER (PARTITION BY gateway ORDER BY first_seq) AS span FROM ordered
)
SELECT gateway, min(first_seq) AS first_seq, max(last_seq) AS last_seq, count(*) AS runs
FROM numbered GROUP BY gateway, span HAVING count(*) > 1`;

export interface CompactionResult {
  gateways: number;
  /** Runs joined into fewer, and how many they became. */
  runsBefore: number;
  runsAfter: number;
}

/**
 * Joins each gateway's adjacent runs into one (store maintenance). A transaction writes a run
 * per gateway it holds records of, so a gateway sending every 10 s left 8,640 runs a day, and
 * every seq check and count read them all; a gateway's outbox numbers without gaps, so once
 * its earlier seqs have arrived its runs join into one. What is stored does not change: the
 * runs of a span are deleted and the span written in the same transaction, and a run another
 * transaction writes meanwhile overlaps the span only where it overlaps the runs, which the
 * exclusion constraint refuses either way. One process at a time (an advisory lock; a second
 * one skips), at most `COMPACT_GATEWAYS` gateways and about `COMPACT_RUNS` runs per transaction.
 */
export async function compactSeqRuns(db: Database): Promise<CompactionResult> {
  const result: CompactionResult = { gateways: 0, runsBefore: 0, runsAfter: 0 };
  const { rows } = await db.read(() =>
    db.query<{ gateway: string; runs: string }>('SELECT gateway, count(*) AS runs FROM outpost.seq_runs GROUP BY gateway HAVING count(*) > 1 ORDER BY gateway'),
  );
  const chunks: string[][] = [];
  let runs = 0;
  for (const r of rows) {
    const last = chunks.at(-1);
    if (!last || last.length >= COMPACT_GATEWAYS || runs + Number(r.runs) > COMPACT_RUNS) {
      chunks.push([r.gateway]);
      runs = Number(r.runs);
    } else {
      last.push(r.gateway);
      runs += Number(r.runs);
    }
  }
  for (const chunk of chunks) {
    const done = await db.write(
      'compact seq runs',
      async (c) => {
        const { rows: locked } = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1, $2) AS ok', [LOCK_NAMESPACE, LOCK_SEQ_COMPACTION]);
        if (!locked[0]?.ok) return undefined;
        const { rows: spans } = await c.query<{ gateway: string; first_seq: string; last_seq: string; runs: string }>(ADJACENT_SPANS, [chunk]);
        if (spans.length === 0) return { runsBefore: 0, runsAfter: 0 };
        const columns = [spans.map((s) => s.gateway), spans.map((s) => s.first_seq), spans.map((s) => s.last_seq)];
        const deleted = await c.query(
          `DELETE FROM outpost.seq_runs r USING unnest($1::text[], $2::int8[], $3::int8[]) AS s(g, lo, hi)
           WHERE r.gateway = s.g AND r.first_seq >= s.lo AND r.last_seq <= s.hi`,
          columns,
        );
        const joined = spans.reduce((n, s) => n + Number(s.runs), 0);
        // Runs are only ever added outside compaction, and none can lie inside a span (it would overlap).
        if (deleted.rowCount !== joined) throw new Error(`seq runs changed under compaction: ${deleted.rowCount} deleted, ${joined} expected`);
        await c.query('INSERT INTO outpost.seq_runs (gateway, first_seq, last_seq) SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[])', columns);
        return { runsBefore: joined, runsAfter: spans.length };
      },
      { idempotent: true },
    );
    // Another process is compacting: it does the rest.
    if (!done) break;
    result.gateways += chunk.length;
    result.runsBefore += done.runsBefore;
    result.runsAfter += done.runsAfter;
  }
  return result;
}
