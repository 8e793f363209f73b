import { checkGateway } from '../level.js';
import { DEFAULT_COMMAND_TTL_MS, listLimit, newCommand, withAck, withExpiry, withSend } from '../command-model.js';
import type {
  CommandAck,
  CommandBody,
  CommandFilter,
  CommandRef,
  CommandSend,
  CommandState,
  EnqueueOptions,
  GatewayCommand,
  QueuedCommand,
} from '../contract.js';
import type { Catalog } from './catalog.js';
import type { Database, Sql } from './db.js';

/**
 * The command queue in `outpost.commands` (schema.ts migrations 1 and 2). The whole command as
 * the contract has it is the `doc` column; `state`, `expires_at`, `group_id`, `mt_counters` and
 * `request_id` repeat what the queries filter on. A transition reads the row `FOR UPDATE`, asks
 * command-model.ts for the next version and writes it in the same transaction, so concurrent
 * acks, sends and expiries from any number of centrals are applied one after the other.
 */

interface CommandRow {
  gateway: string;
  cursor: string;
  command: CommandBody;
  state: CommandState;
  created_at: number;
  ack: CommandAck | null;
  doc: QueuedCommand | null;
}

const COLUMNS = `gateway, cursor, command, state, round(date_part('epoch', created_at) * 1000) AS created_at, ack, doc`;

/** A row as the contract's command; rows of migration 1 (no `doc`) get the default expiry. */
function fromRow(r: CommandRow): GatewayCommand {
  if (r.doc) return { ...r.doc, gateway: r.gateway };
  const createdAt = Number(r.created_at);
  return {
    gateway: r.gateway,
    cursor: Number(r.cursor),
    command: r.command,
    state: r.state,
    createdAt,
    expiresAt: createdAt + DEFAULT_COMMAND_TTL_MS,
    ...(r.ack ? { ack: r.ack } : {}),
  };
}

function strip(c: GatewayCommand): QueuedCommand {
  const { gateway: _gateway, ...rest } = c;
  return rest;
}

async function save(c: Sql, gateway: string, q: QueuedCommand): Promise<void> {
  const counters = (q.sends ?? []).flatMap((s) => (s.counter === undefined ? [] : [s.counter]));
  await c.query(
    `UPDATE outpost.commands SET state = $3, ack = $4, acked_at = $5, doc = $6, mt_counters = $7::bigint[]
     WHERE gateway = $1 AND cursor = $2`,
    [gateway, q.cursor, q.state, q.ack ? JSON.stringify(q.ack) : null, q.ack ? new Date(q.ack.at) : null, JSON.stringify(q), counters],
  );
}

/**
 * Queues a command under the gateway's next cursor, or answers the command already queued with
 * its requestId (idempotent). The gateway's row is locked first (`FOR UPDATE`), so two enqueues
 * of one requestId, in any processes, queue it once, and cursors increase across processes.
 */
export async function enqueueCommand(
  db: Database,
  catalog: Catalog,
  gateway: string,
  command: CommandBody,
  options: EnqueueOptions | undefined,
  now: number,
): Promise<QueuedCommand> {
  checkGateway(gateway);
  newCommand(1, command, options, now); // checks the command before any statement
  const out = await db.write(
    'enqueue command',
    async (c) => {
      await c.query(`INSERT INTO outpost.gateways (id, first_seen) VALUES ($1, to_timestamp($2)) ON CONFLICT (id) DO NOTHING`, [gateway, now / 1000]);
      await c.query('SELECT command_cursor FROM outpost.gateways WHERE id = $1 FOR UPDATE', [gateway]);
      const existing = await c.query<CommandRow>(`SELECT ${COLUMNS} FROM outpost.commands WHERE gateway = $1 AND request_id = $2 LIMIT 1`, [
        gateway,
        command.requestId,
      ]);
      if (existing.rows[0]) return strip(fromRow(existing.rows[0]));
      const { rows } = await c.query<{ command_cursor: string }>(
        'UPDATE outpost.gateways SET command_cursor = command_cursor + 1 WHERE id = $1 RETURNING command_cursor',
        [gateway],
      );
      const queued = newCommand(Number(rows[0]!.command_cursor), command, options, now);
      await c.query(
        `INSERT INTO outpost.commands (gateway, cursor, request_id, type, command, state, created_at, expires_at, group_id, doc)
         VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7), to_timestamp($8), $9, $10)`,
        [
          gateway,
          queued.cursor,
          command.requestId,
          command.type,
          JSON.stringify(command),
          queued.state,
          now / 1000,
          queued.expiresAt / 1000,
          queued.group ?? null,
          JSON.stringify(queued),
        ],
      );
      return queued;
    },
    // Again after a lost connection is harmless: the requestId finds the first copy.
    { idempotent: true },
  );
  catalog.commit(gateway, new Map());
  return out;
}

export async function commandsAfter(db: Database, gateway: string, after: number, limit: number): Promise<QueuedCommand[]> {
  if (limit <= 0) return [];
  const { rows } = await db.read(() =>
    db.query<CommandRow>(`SELECT ${COLUMNS} FROM outpost.commands WHERE gateway = $1 AND cursor > $2 ORDER BY cursor LIMIT $3`, [
      gateway,
      Math.max(-1, Math.floor(after)),
      Math.floor(limit),
    ]),
  );
  return rows.map((r) => strip(fromRow(r)));
}

export async function findCommand(db: Database, gateway: string, ref: CommandRef): Promise<QueuedCommand | undefined> {
  const [where, param] =
    'cursor' in ref
      ? ['cursor = $2', Number.isSafeInteger(ref.cursor) ? ref.cursor : -1]
      : 'requestId' in ref
        ? ['request_id = $2', ref.requestId]
        : ['$2 = ANY (mt_counters)', Number.isSafeInteger(ref.mtCounter) ? ref.mtCounter : -1];
  const { rows } = await db.read(() =>
    db.query<CommandRow>(`SELECT ${COLUMNS} FROM outpost.commands WHERE gateway = $1 AND ${where} ORDER BY cursor DESC LIMIT 1`, [gateway, param]),
  );
  return rows[0] ? strip(fromRow(rows[0])) : undefined;
}

export async function listCommands(db: Database, filter: CommandFilter): Promise<GatewayCommand[]> {
  const limit = listLimit(filter);
  const where: string[] = [];
  const params: unknown[] = [];
  if (filter.gateway !== undefined) where.push(`gateway = $${params.push(filter.gateway)}`);
  if (filter.state !== undefined) where.push(`state = $${params.push(filter.state)}`);
  if (filter.group !== undefined) where.push(`group_id = $${params.push(filter.group)}`);
  const sql = `SELECT ${COLUMNS} FROM outpost.commands ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
    ORDER BY created_at DESC, cursor DESC LIMIT $${params.push(limit)}`;
  const { rows } = await db.read(() => db.query<CommandRow>(sql, params));
  return rows.map(fromRow);
}

/** Reads the command `FOR UPDATE`, applies `next` (undefined: no change) and writes it; answers the newest version. */
async function transition(
  db: Database,
  what: string,
  gateway: string,
  cursor: number,
  next: (c: QueuedCommand) => QueuedCommand | undefined,
): Promise<QueuedCommand | undefined> {
  checkGateway(gateway);
  if (!Number.isSafeInteger(cursor)) return undefined;
  return db.write(
    what,
    async (c) => {
      const { rows } = await c.query<CommandRow>(`SELECT ${COLUMNS} FROM outpost.commands WHERE gateway = $1 AND cursor = $2 FOR UPDATE`, [gateway, cursor]);
      if (!rows[0]) return undefined;
      const current = strip(fromRow(rows[0]));
      const updated = next(current);
      if (!updated) return current;
      await save(c, gateway, updated);
      return updated;
    },
    { idempotent: true },
  );
}

/** The gateway's answer (command-model.ts `withAck`: `applied` is final). */
export function recordCommandAck(db: Database, gateway: string, cursor: number, ack: CommandAck): Promise<QueuedCommand | undefined> {
  return transition(db, 'record command ack', gateway, cursor, (c) => withAck(c, ack));
}

export function markCommandSent(db: Database, gateway: string, cursor: number, send: CommandSend): Promise<QueuedCommand | undefined> {
  return transition(db, 'mark command sent', gateway, cursor, (c) => withSend(c, send));
}

/** Every queued or sent command past its expiry (the partial index `commands_pending`), one transaction each. */
export async function expireCommands(db: Database, now: number): Promise<QueuedCommand[]> {
  const { rows } = await db.read(() =>
    db.query<{ gateway: string; cursor: string }>(
      `SELECT gateway, cursor FROM outpost.commands WHERE state IN ('queued', 'sent') AND expires_at <= to_timestamp($1) LIMIT 1000`,
      [now / 1000],
    ),
  );
  const out: QueuedCommand[] = [];
  for (const r of rows) {
    const c = await transition(db, 'expire command', r.gateway, Number(r.cursor), (c) => withExpiry(c, now));
    if (c?.state === 'expired') out.push(c);
  }
  return out;
}

/** max(last + 1, floor), committed before it is answered (an MT message must never reuse one). */
export async function nextMtCounter(db: Database, gateway: string, floor: number, now: number): Promise<number> {
  checkGateway(gateway);
  return db.write(
    'next MT counter',
    async (c) => {
      const { rows } = await c.query<{ mt_counter: string }>(
        `INSERT INTO outpost.gateways (id, first_seen, mt_counter) VALUES ($1, to_timestamp($2), $3)
         ON CONFLICT (id) DO UPDATE SET mt_counter = greatest(outpost.gateways.mt_counter + 1, $3) RETURNING mt_counter`,
        [gateway, now / 1000, Math.max(1, Math.floor(floor))],
      );
      return Number(rows[0]!.mt_counter);
    },
    // Not again after a lost COMMIT answer: a counter taken twice is only a gap, never a reuse.
    { idempotent: true },
  );
}
