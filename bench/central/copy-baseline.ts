/**
 * The physical limit the receiver is compared with: the very rows the fleet sends
 * (gateway, datapoint, t, value, seq) loaded with `COPY … FROM STDIN` into plain tables keyed
 * as the issue keys them — a reading per (series, t) and a row per (gateway, seq) — in one
 * transaction on one connection, from text built before the clock starts. No parsing
 * of MQTT or JSON, no dedupe lookups, no round trip per batch: what PostgreSQL itself can take
 * on this machine.
 */
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { gatewayId, recordsPerGateway, readingTime, readingValue, type IngestPlan } from './plan.js';

/**
 * The store's two tables of the hot path as central/store/postgres/schema.ts makes them:
 * readings keyed by (series, t) — `series` the number the store gives each gateway datapoint
 * (`outpost.datapoints`), here `gateway × datapoints + datapoint + 1` — with `v` a float8
 * and the `j`, `q` columns empty; seqs keyed by (gateway, seq), a row each. The store writes
 * more per batch (the receipt, the rollup refresh's dirty minutes) and keeps its seqs as runs,
 * a row per run of consecutive seqs (schema migration 4, seq-runs.ts), where this writes a row
 * per seq: so the COPY of the readings alone is timed too, and the bench prints the store's
 * rate against it beside the limit.
 */
export const COPY_SCHEMA = `
CREATE TABLE copy_readings (
  series int NOT NULL,
  t timestamptz NOT NULL,
  v float8,
  j jsonb,
  q text CHECK (q IN ('stale', 'bad')),
  PRIMARY KEY (series, t)
);
CREATE TABLE copy_seqs (
  gateway text NOT NULL,
  seq bigint NOT NULL,
  PRIMARY KEY (gateway, seq)
);`;

export interface CopyResult {
  rows: number;
  seconds: number;
  /** Of `seconds`, the COPY of the readings (from BEGIN). */
  readingsSeconds: number;
  /** CPU seconds of the cluster during the COPY (measured while its backend is alive). */
  databaseCpu: number;
}

/** COPY text of every reading, one chunk per gateway (built before timing). */
function readingChunks(p: IngestPlan): Buffer[] {
  const chunks: Buffer[] = [];
  const r = recordsPerGateway(p);
  for (let g = 0; g < p.gateways; g++) {
    let text = '';
    for (let k = 0; k < r; k++) text += `${g * p.datapoints + (k % p.datapoints) + 1}\t${new Date(readingTime(p, k)).toISOString()}\t${readingValue(g, k)}\n`;
    chunks.push(Buffer.from(text));
  }
  return chunks;
}

function seqChunks(p: IngestPlan): Buffer[] {
  const chunks: Buffer[] = [];
  const r = recordsPerGateway(p);
  for (let g = 0; g < p.gateways; g++) {
    const gw = gatewayId(g);
    let text = '';
    for (let k = 0; k < r; k++) text += `${gw}\t${k + 1}\n`;
    chunks.push(Buffer.from(text));
  }
  return chunks;
}

export async function copyBaseline(url: string, p: IngestPlan, clusterCpu: () => number): Promise<CopyResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(COPY_SCHEMA);
    const readings = readingChunks(p);
    const seqs = seqChunks(p);
    await client.query('CHECKPOINT');
    const cpu0 = clusterCpu();
    const started = performance.now();
    await client.query('BEGIN');
    await pipeline(Readable.from(readings), client.query(copyFrom('COPY copy_readings (series, t, v) FROM STDIN')));
    const readingsSeconds = (performance.now() - started) / 1000;
    await pipeline(Readable.from(seqs), client.query(copyFrom('COPY copy_seqs (gateway, seq) FROM STDIN')));
    await client.query('COMMIT');
    const seconds = (performance.now() - started) / 1000;
    return { rows: p.gateways * recordsPerGateway(p), seconds, readingsSeconds, databaseCpu: clusterCpu() - cpu0 };
  } finally {
    await client.end();
  }
}

/** Rows per gateway in the COPY tables: every gateway must hold all its readings and seqs. */
export async function copyCounts(url: string, p: IngestPlan): Promise<{ readings: Map<string, number>; seqs: Map<string, number> }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const readings = await client.query<{ g: number; n: string }>(`SELECT (series - 1) / $1 AS g, count(*) AS n FROM copy_readings GROUP BY 1`, [p.datapoints]);
    const seqs = await client.query<{ gateway: string; n: string }>('SELECT gateway, count(*) AS n FROM copy_seqs GROUP BY gateway');
    return {
      readings: new Map(readings.rows.map((r) => [gatewayId(Number(r.g)), Number(r.n)])),
      seqs: new Map(seqs.rows.map((r) => [r.gateway, Number(r.n)])),
    };
  } finally {
    await client.end();
  }
}
