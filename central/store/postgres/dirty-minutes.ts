import type { PoolClient } from './db.js';
import { LOCK_GENERATION, LOCK_NAMESPACE } from './schema.js';

/**
 * The rollup refresh's dirty minutes, written once per (series, minute) and generation rather
 * than once per commit. A meter read every 10 s and sent every few seconds had its minute
 * written to `rollup_dirty` by every commit — a third of the rows an insert wrote.
 *
 * **Generations.** `rollup_generation` holds a number; each dirty entry carries the generation
 * its insert read. An insert holds a shared advisory lock (LOCK_GENERATION) for its whole
 * transaction and reads the generation after taking it. The refresh first bumps the
 * generation in a transaction of its own under the exclusive lock — which waits for every
 * insert that read the old one to end, while new inserts queue behind it (PostgreSQL's lock
 * manager grants no shared lock past a waiting exclusive one) — and then claims only entries
 * of older generations. So an entry of the current generation is never claimed while inserts
 * of that generation run, and an insert may leave out any (series, minute) that an insert of
 * the same generation has committed: that entry is still there and will be claimed with it.
 *
 * **Memory.** Each process remembers, for the current generation, the newest minute it has
 * committed an entry for, per series (one number per series of the fleet: 100,000 series, a
 * few MB). Remembered only after the commit; forgotten at a new generation or a restart, which
 * costs only entries written again. Older minutes (a backfill) are written every time.
 */
export class DirtyMemo {
  private generation = -1;
  private newest = new Map<number, number>();

  /** Whether an insert of `generation` may leave out the entry of (series, minute). */
  written(generation: number, series: number, minute: number): boolean {
    return generation === this.generation && this.newest.get(series) === minute;
  }

  /** After the commit of an insert of `generation`: the entries it wrote. */
  remember(generation: number, entries: ReadonlyArray<{ series: number; minute: number }>): void {
    if (generation < this.generation) return;
    if (generation > this.generation) {
      this.generation = generation;
      this.newest = new Map();
    }
    for (const { series, minute } of entries) {
      const known = this.newest.get(series);
      if (known === undefined || minute > known) this.newest.set(series, minute);
    }
  }
}

/**
 * For an insert transaction: takes the shared generation lock, then reads the generation in a
 * statement of its own (READ COMMITTED: a new snapshot, taken after the lock was granted, so
 * it sees a bump that committed while the insert waited). Both go in one simple query, one
 * round trip: under READ COMMITTED each statement of a multi-statement query string takes its
 * own snapshot when it starts (postgres.c, exec_simple_query). A single statement would not do:
 * its snapshot is older than the lock it waits for (test/central/postgres-store.test.ts).
 */
const READ_GENERATION = `SELECT pg_advisory_xact_lock_shared(${LOCK_NAMESPACE}, ${LOCK_GENERATION}); SELECT generation FROM outpost.rollup_generation`;

export async function readGeneration(c: PoolClient): Promise<number> {
  const results = (await c.query(READ_GENERATION)) as unknown as Array<{ rows: Array<{ generation: string }> }>;
  return Number(results[1]!.rows[0]!.generation);
}

/** For the refresh, in a transaction of its own: the new generation, once no insert of the old one runs. */
export async function bumpGeneration(c: PoolClient): Promise<number> {
  await c.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_NAMESPACE, LOCK_GENERATION]);
  const { rows } = await c.query<{ generation: string }>('UPDATE outpost.rollup_generation SET generation = generation + 1 RETURNING generation');
  return Number(rows[0]!.generation);
}
