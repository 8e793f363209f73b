import type { Database, PoolClient } from './db.js';

/** `<gateway>/<datapoint>`: unambiguous, neither id holds a `/` (central/store/series.ts). */
const key = (gateway: string, id: string): string => `${gateway}/${id}`;

/**
 * Gateways and datapoints this process knows exist, and each datapoint's `series` number: the
 * insert path looks them up in memory, and only a datapoint not seen since open costs a query.
 * Filled only after a commit (`commit`), so a rolled-back registration is never cached.
 * Memory: one entry per datapoint of the fleet (100,000 datapoints: a few MB).
 */
export class Catalog {
  private readonly gateways = new Set<string>();
  private readonly series = new Map<string, number>();

  constructor(private readonly db: Database) {}

  knowsGateway(gateway: string): boolean {
    return this.gateways.has(gateway);
  }

  /** Inserts the gateway's row if this process has not seen it (inside the caller's transaction). */
  async registerGateway(c: PoolClient, gateway: string, at: number): Promise<void> {
    if (this.gateways.has(gateway)) return;
    await c.query('INSERT INTO outpost.gateways (id, first_seen) VALUES ($1, to_timestamp($2)) ON CONFLICT (id) DO NOTHING', [gateway, at / 1000]);
  }

  /**
   * The series of each id (sorted ids), registering the new ones in the caller's transaction.
   * READ COMMITTED: a datapoint another transaction registers at the same moment makes our
   * ON CONFLICT wait for it, and the next statement (a new snapshot) finds its row.
   */
  async resolve(c: PoolClient, gateway: string, ids: readonly string[], at: number): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    let missing: string[] = [];
    for (const id of ids) {
      const s = this.series.get(key(gateway, id));
      if (s === undefined) missing.push(id);
      else out.set(id, s);
    }
    if (missing.length === 0) return out;
    const select = async (list: string[]) => {
      const { rows } = await c.query<{ series: number; id: string }>('SELECT series, id FROM outpost.datapoints WHERE gateway = $1 AND id = ANY ($2::text[])', [
        gateway,
        list,
      ]);
      for (const r of rows) out.set(r.id, r.series);
      return list.filter((id) => !out.has(id));
    };
    missing = await select(missing);
    if (missing.length === 0) return out;
    const inserted = await c.query<{ series: number; id: string }>(
      `INSERT INTO outpost.datapoints (gateway, id, first_seen, last_seen)
       SELECT $1, id, to_timestamp($3), to_timestamp($3) FROM unnest($2::text[]) AS u(id)
       ON CONFLICT (gateway, id) DO NOTHING RETURNING series, id`,
      [gateway, missing, at / 1000],
    );
    for (const r of inserted.rows) out.set(r.id, r.series);
    missing = missing.filter((id) => !out.has(id));
    if (missing.length > 0) missing = await select(missing);
    if (missing.length > 0) throw new Error(`datapoints ${missing.join(', ')} of ${gateway} neither inserted nor found`);
    return out;
  }

  /** After the commit: what the transaction registered is known from now on. */
  commit(gateway: string, series: ReadonlyMap<string, number>): void {
    this.gateways.add(gateway);
    for (const [id, s] of series) this.series.set(key(gateway, id), s);
  }

  /** The series of a datapoint (undefined: the gateway never sent it). */
  async lookup(gateway: string, id: string): Promise<number | undefined> {
    const cached = this.series.get(key(gateway, id));
    if (cached !== undefined) return cached;
    const { rows } = await this.db.pool.query<{ series: number }>('SELECT series FROM outpost.datapoints WHERE gateway = $1 AND id = $2', [gateway, id]);
    const s = rows[0]?.series;
    if (s !== undefined) this.series.set(key(gateway, id), s);
    return s;
  }
}
