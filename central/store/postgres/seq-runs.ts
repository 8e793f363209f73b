import type { CopyRows } from './copy.js';
import type { PoolClient } from './db.js';

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
