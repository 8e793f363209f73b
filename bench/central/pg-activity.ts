/**
 * What the receiver's PostgreSQL backends were doing during a run (`OUTPOST_BENCH_SAMPLE=1`):
 * pg_stat_activity read every few milliseconds, each backend of `outpost-central` counted by
 * its state and wait event. "idle in transaction" means PostgreSQL waits for the receiver
 * (streaming COPY rows, its next statement); "active" with no wait event means it computes;
 * "IO/WalSync" the commit's flush; "idle" that no transaction was given to it.
 */
import pg from 'pg';

export interface ActivitySampler {
  /** Ends the sampling (once; later calls answer the same) and answers the mean per state. */
  stop(): Promise<string[]>;
}

export async function sampleActivity(url: string, everyMs = 5): Promise<ActivitySampler> {
  const c = new pg.Client({ connectionString: url });
  // The cluster may go away first (a failed run's teardown): the sampling just ends.
  let failure: Error | undefined;
  c.on('error', (err) => {
    failure ??= err;
  });
  await c.connect();
  const counts = new Map<string, number>();
  let samples = 0;
  let running = true;
  const loop = (async () => {
    while (running && !failure) {
      const { rows } = await c.query<{ state: string; wait: string | null; query: string }>(
        `SELECT state, wait_event_type || '/' || wait_event AS wait, left(regexp_replace(query, '\\s+', ' ', 'g'), 40) AS query
         FROM pg_stat_activity WHERE application_name LIKE 'outpost-central%' AND pid <> pg_backend_pid()`,
      );
      samples++;
      for (const r of rows) {
        const key = r.state === 'active' ? `active ${r.wait ?? 'CPU'}  ${r.query}` : r.state;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })().catch((err: Error) => {
    failure ??= err;
  });
  let stopped: Promise<string[]> | undefined;
  return {
    stop() {
      stopped ??= (async () => {
        running = false;
        await loop;
        await c.end().catch(() => undefined);
        const lines = [...counts]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 15)
          .map(([key, n]) => `${(n / Math.max(samples, 1)).toFixed(2).padStart(6)} backends  ${key}`);
        return failure ? [...lines, `(sampling ended early: ${failure.message})`] : lines;
      })();
      return stopped;
    },
  };
}
