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

export async function recordStatus(db: Database, catalog: Catalog, gateway: string, status: GatewayStatus): Promise<void> {
  checkGateway(gateway);
  await db.write(
    'record status',
    async (c) => {
      await catalog.registerGateway(c, gateway, status.at);
      // The gateway's row locked until the commit: receivers in any process committing a will
      // and the next online at once merge one after the other (contract.ts `GatewayStatus`).
      await c.query('SELECT 1 FROM outpost.gateways WHERE id = $1 FOR NO KEY UPDATE', [gateway]);
      const { rows } = await c.query<{ status: GatewayStatus }>('SELECT status FROM outpost.statuses WHERE gateway = $1 ORDER BY at DESC LIMIT 1', [gateway]);
      const merged = mergeStatus(rows[0]?.status, status);
      if (!merged) return;
      // One row per (gateway, arrival ms), the newest the reported one; `at` never goes back.
      await c.query(
        `INSERT INTO outpost.statuses (gateway, at, via, status) VALUES ($1, to_timestamp($2), $3, $4)
         ON CONFLICT (gateway, at) DO UPDATE SET via = excluded.via, status = excluded.status`,
        [gateway, merged.at / 1000, merged.via, JSON.stringify(merged)],
      );
    },
    { idempotent: true, bounded: true },
  );
  catalog.commit(gateway, new Map());
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
    gateway === undefined ? db.pool.query<StateRow>(`${STATES} ORDER BY g.id COLLATE "C"`) : db.pool.query<StateRow>(`${STATES} WHERE g.id = $1`, [gateway]),
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
    db.pool.query<{ messages: string; bytes: string; credits: string }>(
      `SELECT count(*) AS messages, coalesce(sum(bytes), 0) AS bytes, coalesce(sum(credits), 0) AS credits
       FROM outpost.satellite_messages WHERE gateway = $1 AND key >= to_timestamp($2) AND key <= to_timestamp($3)`,
      [gateway, lo / 1000, hi / 1000],
    ),
  );
  const r = rows[0];
  return { messages: num(r?.messages), bytes: num(r?.bytes), credits: num(r?.credits) };
}
