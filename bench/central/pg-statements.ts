/**
 * Where PostgreSQL's time went during a run: pg_stat_statements (loaded by the bench's cluster),
 * its statements by total execution time. COMMIT's time is the WAL flush (fsync) each
 * transaction waits for.
 */
import pg from 'pg';

export async function resetStatements(url: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    await c.query('SELECT pg_stat_statements_reset()');
  } finally {
    await c.end();
  }
}

/** The top statements of the database at `url`, as printable lines. */
export async function topStatements(url: string, limit = 8): Promise<string[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ query: string; calls: string; rows: string; total: number; mean: number; share: number }>(
      `SELECT query, calls, rows, total_exec_time AS total, mean_exec_time AS mean,
              100 * total_exec_time / nullif(sum(total_exec_time) OVER (), 0) AS share
       FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
       WHERE d.datname = current_database()
       ORDER BY total_exec_time DESC LIMIT $1`,
      [limit],
    );
    return rows.map(
      (r) =>
        `${r.share.toFixed(1).padStart(5)} %  ${(r.total / 1000).toFixed(1).padStart(6)} s  ${Number(r.calls).toLocaleString('en-US').padStart(8)} calls  ` +
        `${r.mean.toFixed(2).padStart(7)} ms  ${Number(r.rows).toLocaleString('en-US').padStart(10)} rows  ${r.query.replace(/\s+/g, ' ').slice(0, 90)}`,
    );
  } finally {
    await c.end();
  }
}
