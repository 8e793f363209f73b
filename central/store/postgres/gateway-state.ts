import { MAX_TIME } from '../../../storage/level/db.js';
import { checkGateway } from '../level.js';
import { satelliteKey } from '../series.js';
import { mergeStatus, settleLastSeen } from '../status-order.js';
import type { GatewayState, GatewayStatus, IngestLane, IngestVia, SatelliteMessage, SatelliteUsage } from '../contract.js';
import type { Catalog } from './catalog.js';
import { num } from './codec.js';
import type { Database, Sql } from './db.js';

/** A satellite message, once per (gateway, key): a webhook delivered twice writes the same row (series.ts `satelliteKey`). */
export async function upsertSatellite(c: Sql, gateway: string, m: SatelliteMessage): Promise<void> {
  await c.query(
    `INSERT INTO outpost.satellite_messages (gateway, key, imei, momsn, transmit_time, bytes, credits, kind, message)
     VALUES ($1, to_timestamp($2), $3, $4, to_timestamp($5), $6, $7, $8, $9)
     ON CONFLICT (gateway, key) DO UPDATE SET imei = excluded.imei, momsn = excluded.momsn, transmit_time = excluded.transmit_time,
       bytes = excluded.bytes, credits = excluded.credits, kind = excluded.kind, message = excluded.message`,
    [gateway, satelliteKey(m.transmitTime, m.momsn) / 1000, m.imei, m.momsn, m.transmitTime / 1000, m.bytes, m.credits, m.kind, JSON.stringify(m)],
  );
}

/** A status to commit (contract.ts `recordStatus`), as gathered by the status group commit. */
export interface StatusEntry {
  gateway: string;
  status: GatewayStatus;
}

/** The newest status row of each gateway: an index lookup per gateway (statuses' key, gateway then at). */
const NEWEST_STATUSES = `SELECT u.g AS gateway, s.status FROM unnest($1::text[]) AS u(g)
  CROSS JOIN LATERAL (SELECT status FROM outpost.statuses WHERE gateway = u.g ORDER BY at DESC LIMIT 1) s`;

/**
 * Any number of statuses, of any gateways, in one transaction, as if committed one after the
 * other in the order given: each is merged (status-order.ts) onto the one before it. A
 * fleet's gateways all report `online` when a broker comes back; a transaction each (four
 * round trips and a WAL flush) held the pool's connections for seconds, and the readings'
 * transactions waited behind them for a connection (bench/README.md "Statuses by group
 * commit"). The gateways' rows are locked in id order until the commit, so receivers in any
 * process committing a will and the next `online` at once merge one after the other, and two
 * such transactions never wait on each other in a circle.
 */
export async function recordStatuses(db: Database, catalog: Catalog, entries: readonly StatusEntry[]): Promise<void> {
  const firstSeen = new Map<string, number>();
  for (const { gateway, status } of entries) firstSeen.set(gateway, Math.min(firstSeen.get(gateway) ?? status.at, status.at));
  const gateways = [...firstSeen.keys()].sort();
  await db.write(
    'record statuses',
    async (c) => {
      await catalog.registerGateways(c, firstSeen);
      await c.query({
        name: 'outpost-lock-gateways',
        text: 'SELECT 1 FROM outpost.gateways WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE',
        values: [gateways],
      });
      const { rows } = await c.query<{ gateway: string; status: GatewayStatus }>({
        name: 'outpost-newest-statuses',
        text: NEWEST_STATUSES,
        values: [gateways],
      });
      const current = new Map(rows.map((r) => [r.gateway, r.status]));
      // One row per (gateway, arrival ms), the newest the reported one; `at` never goes back. A
      // later status of the same gateway and ms replaces an earlier one's row, as its upsert would.
      const writes = new Map<string, StatusEntry>();
      for (const { gateway, status } of entries) {
        const merged = mergeStatus(current.get(gateway), status);
        if (!merged) continue;
        current.set(gateway, merged);
        writes.set(`${gateway}\n${merged.at}`, { gateway, status: merged });
      }
      if (writes.size === 0) return;
      const rowsToWrite = [...writes.values()];
      await c.query({
        name: 'outpost-write-statuses',
        text: `INSERT INTO outpost.statuses (gateway, at, via, status)
         SELECT g, to_timestamp(at), via, status FROM unnest($1::text[], $2::float8[], $3::text[], $4::jsonb[]) AS u(g, at, via, status)
         ON CONFLICT (gateway, at) DO UPDATE SET via = excluded.via, status = excluded.status`,
        values: [
          rowsToWrite.map((w) => w.gateway),
          rowsToWrite.map((w) => w.status.at / 1000),
          rowsToWrite.map((w) => w.status.via),
          rowsToWrite.map((w) => JSON.stringify(w.status)),
        ],
      });
    },
    { idempotent: true, bounded: true, ingest: true },
  );
  for (const gateway of gateways) catalog.commit(gateway, new Map());
}

export async function recordSatellite(db: Database, catalog: Catalog, gateway: string, message: SatelliteMessage): Promise<void> {
  checkGateway(gateway);
  await db.write(
    'record satellite message',
    async (c) => {
      await catalog.registerGateway(c, gateway, message.transmitTime);
      await upsertSatellite(c, gateway, message);
    },
    { idempotent: true, bounded: true },
  );
  catalog.commit(gateway, new Map());
}

interface StateRow {
  id: string;
  rx_at: number | null;
  rx_via: IngestVia | null;
  rx_lane: IngestLane | null;
  rx_key: string | null;
  rx_stored: number | null;
  rx_duplicates: number | null;
  status: GatewayStatus | null;
  message: SatelliteMessage | null;
}

/** Each gateway with its newest receipt, status and satellite message: three index lookups per gateway. */
const STATES = `SELECT g.id,
    rx.at AS rx_at, rx.via AS rx_via, rx.lane AS rx_lane, rx.key AS rx_key, rx.stored AS rx_stored, rx.duplicates AS rx_duplicates,
    st.status, sm.message
  FROM outpost.gateways g
  LEFT JOIN LATERAL (
    SELECT round(date_part('epoch', r.at) * 1000) AS at, r.via, r.lane, r.key, r.stored, r.duplicates
    FROM outpost.receipts r WHERE r.gateway = g.id ORDER BY r.at DESC, r.id DESC LIMIT 1
  ) rx ON true
  LEFT JOIN LATERAL (SELECT s.status FROM outpost.statuses s WHERE s.gateway = g.id ORDER BY s.at DESC LIMIT 1) st ON true
  LEFT JOIN LATERAL (SELECT m.message FROM outpost.satellite_messages m WHERE m.gateway = g.id ORDER BY m.key DESC LIMIT 1) sm ON true`;

export async function gatewayStates(db: Database, gateway?: string): Promise<GatewayState[]> {
  const { rows } = await db.read(() =>
    gateway === undefined ? db.query<StateRow>(`${STATES} ORDER BY g.id COLLATE "C"`) : db.query<StateRow>(`${STATES} WHERE g.id = $1`, [gateway]),
  );
  return rows.map(stateOf);
}

/** What the embedded store answers (level.ts `stateOf`): the newest arrival of receipt, status and satellite message. */
function stateOf(row: StateRow): GatewayState {
  const state: GatewayState = { id: row.id };
  if (row.rx_at !== null) {
    state.lastReceipt = {
      at: row.rx_at,
      via: row.rx_via!,
      lane: row.rx_lane!,
      stored: num(row.rx_stored),
      duplicates: num(row.rx_duplicates),
      ...(row.rx_key !== null ? { key: row.rx_key } : {}),
    };
  }
  if (row.status) state.status = row.status;
  if (row.message) state.satellite = row.message;
  return settleLastSeen(state);
}

export async function satelliteUsage(db: Database, gateway: string, from: number, to: number): Promise<SatelliteUsage> {
  const lo = Math.max(0, from);
  const hi = Math.min(to, MAX_TIME);
  if (hi < lo) return { messages: 0, bytes: 0, credits: 0 };
  const { rows } = await db.read(() =>
    db.query<{ messages: string; bytes: string; credits: string }>(
      `SELECT count(*) AS messages, coalesce(sum(bytes), 0) AS bytes, coalesce(sum(credits), 0) AS credits
       FROM outpost.satellite_messages WHERE gateway = $1 AND key >= to_timestamp($2) AND key <= to_timestamp($3)`,
      [gateway, lo / 1000, hi / 1000],
    ),
  );
  const r = rows[0];
  return { messages: num(r?.messages), bytes: num(r?.bytes), credits: num(r?.credits) };
}
