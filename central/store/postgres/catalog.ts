import { internId } from '../record-columns.js';
import type { Database, PoolClient } from './db.js';

/**
 * Datapoints read into the catalog at open, the most recently seen first (a fleet's: 100,000);
 * below the intern table's 250,000 (record-columns.ts), which a full preload would clear.
 */
const PRELOAD_DATAPOINTS = 200_000;

/**
 * Gateways and datapoints this process knows exist, and each datapoint's `series` number: the
 * insert path looks them up in memory, and only a datapoint not seen since open costs a query.
 * Filled only after a commit (`commit`), so a rolled-back registration is never cached.
 * Memory: one entry per datapoint of the fleet (100,000 datapoints: a few MB).
 */
export class Catalog {
  private readonly gateways = new Set<string>();
  /** gateway → datapoint id → series: looked up for every record, without building a key string. */
  private readonly series = new Map<string, Map<string, number>>();

  constructor(private readonly db: Database) {}

  /**
   * At open: every gateway, and the datapoints seen most recently (up to `limit`), so that a
   * restarted receiver does not look up each gateway's datapoints at its first batch — a
   * query per transaction for the first thousand batches of a fleet, 1.1 s of PostgreSQL's 6 s
   * in the bench (bench/README.md). Answers the datapoints read.
   */
  async load(limit = PRELOAD_DATAPOINTS): Promise<number> {
    const gateways = await this.db.query<{ id: string }>('SELECT id FROM outpost.gateways');
    for (const { id } of gateways.rows) this.gateways.add(id);
    const { rows } = await this.db.query<{ series: number; gateway: string; id: string }>(
      'SELECT series, gateway, id FROM outpost.datapoints ORDER BY last_seen DESC LIMIT $1',
      [limit],
    );
    for (const r of rows) {
      let known = this.series.get(r.gateway);
      if (!known) this.series.set(r.gateway, (known = new Map()));
      // The ids ingest hands over are interned (record-columns.ts): the same string finds its entry fastest.
      known.set(internId(r.id), r.series);
    }
    return rows.length;
  }

  /** Datapoints this process knows the series of (tests, diagnosis). */
  get knownDatapoints(): number {
    let n = 0;
    for (const known of this.series.values()) n += known.size;
    return n;
  }

  knowsGateway(gateway: string): boolean {
    return this.gateways.has(gateway);
  }

  /** Inserts the gateway's row if this process has not seen it (inside the caller's transaction). */
  async registerGateway(c: PoolClient, gateway: string, at: number): Promise<void> {
    await this.registerGateways(c, new Map([[gateway, at]]));
  }

  /** The same for many gateways (first seen at `at` epoch ms each), in one statement, sorted so concurrent ones lock in one order. */
  async registerGateways(c: PoolClient, firstSeen: ReadonlyMap<string, number>): Promise<void> {
    const unknown = [...firstSeen].filter(([gateway]) => !this.gateways.has(gateway)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    if (unknown.length === 0) return;
    await c.query({
      name: 'outpost-register-gateways',
      text: 'INSERT INTO outpost.gateways (id, first_seen) SELECT g, to_timestamp(at) FROM unnest($1::text[], $2::float8[]) AS u(g, at) ON CONFLICT (id) DO NOTHING',
      values: [unknown.map(([g]) => g), unknown.map(([, at]) => at / 1000)],
    });
  }

  /**
   * The series of each gateway's ids, registering the new ones (first seen at `at`) in the
   * caller's transaction: three statements at most for any number of gateways, none when all
   * are known. READ COMMITTED: a datapoint another transaction registers at the same moment
   * makes our ON CONFLICT wait for it, and the next statement (a new snapshot) finds its row.
   */
  async resolveAll(c: PoolClient, wanted: ReadonlyMap<string, { ids: Iterable<string>; at: number }>): Promise<Map<string, Map<string, number>>> {
    const out = new Map<string, Map<string, number>>();
    let missing: Array<{ gateway: string; id: string; at: number }> = [];
    for (const [gateway, { ids, at }] of wanted) {
      const known = this.series.get(gateway);
      const series = new Map<string, number>();
      out.set(gateway, series);
      for (const id of ids) {
        const s = known?.get(id);
        if (s === undefined) missing.push({ gateway, id, at });
        else series.set(id, s);
      }
    }
    if (missing.length === 0) return out;
    // Sorted by (gateway, id): two transactions registering overlapping datapoints wait in one direction.
    missing.sort((a, b) => (a.gateway < b.gateway ? -1 : a.gateway > b.gateway ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const take = (rows: Array<{ series: number; gateway: string; id: string }>) => {
      for (const r of rows) out.get(r.gateway)!.set(r.id, r.series);
      missing = missing.filter((m) => !out.get(m.gateway)!.has(m.id));
    };
    const select = async () => {
      const { rows } = await c.query<{ series: number; gateway: string; id: string }>({
        name: 'outpost-find-datapoints',
        text: 'SELECT d.series, d.gateway, d.id FROM unnest($1::text[], $2::text[]) AS u(g, i) JOIN outpost.datapoints d ON d.gateway = u.g AND d.id = u.i',
        values: [missing.map((m) => m.gateway), missing.map((m) => m.id)],
      });
      take(rows);
    };
    await select();
    if (missing.length === 0) return out;
    const inserted = await c.query<{ series: number; gateway: string; id: string }>({
      name: 'outpost-register-datapoints',
      text: `INSERT INTO outpost.datapoints (gateway, id, first_seen, last_seen)
       SELECT g, i, to_timestamp(at), to_timestamp(at) FROM unnest($1::text[], $2::text[], $3::float8[]) AS u(g, i, at)
       ON CONFLICT (gateway, id) DO NOTHING RETURNING series, gateway, id`,
      values: [missing.map((m) => m.gateway), missing.map((m) => m.id), missing.map((m) => m.at / 1000)],
    });
    take(inserted.rows);
    if (missing.length > 0) await select();
    if (missing.length > 0) throw new Error(`datapoints ${missing.map((m) => `${m.gateway}/${m.id}`).join(', ')} neither inserted nor found`);
    return out;
  }

  /** After the commit: what the transaction registered is known from now on. */
  commit(gateway: string, series: ReadonlyMap<string, number>): void {
    this.gateways.add(gateway);
    let known = this.series.get(gateway);
    if (!known) this.series.set(gateway, (known = new Map()));
    if (known.size === 0) {
      this.series.set(gateway, new Map(series));
      return;
    }
    for (const [id, s] of series) if (!known.has(id)) known.set(id, s);
  }

  /** The series of a datapoint (undefined: the gateway never sent it). */
  async lookup(gateway: string, id: string): Promise<number | undefined> {
    const cached = this.series.get(gateway)?.get(id);
    if (cached !== undefined) return cached;
    const { rows } = await this.db.query<{ series: number }>('SELECT series FROM outpost.datapoints WHERE gateway = $1 AND id = $2', [gateway, id]);
    const s = rows[0]?.series;
    if (s !== undefined) {
      let known = this.series.get(gateway);
      if (!known) this.series.set(gateway, (known = new Map()));
      known.set(id, s);
    }
    return s;
  }
}
