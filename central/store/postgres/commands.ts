import { checkGateway } from '../level.js';
import type { CommandAck, CommandBody, CommandState, QueuedCommand } from '../contract.js';
import type { Catalog } from './catalog.js';
import type { Database } from './db.js';

interface CommandRow {
  cursor: string;
  command: CommandBody;
  state: CommandState;
  created_at: number;
  ack: CommandAck | null;
}

const COLUMNS = `cursor, command, state, round(date_part('epoch', created_at) * 1000) AS created_at, ack`;

function queued(r: CommandRow): QueuedCommand {
  return { cursor: Number(r.cursor), command: r.command, state: r.state, createdAt: r.created_at, ...(r.ack ? { ack: r.ack } : {}) };
}

/**
 * Queues a command under the gateway's next cursor. The cursor is a counter in the gateway's
 * row, raised by the same statement that reads it (the row lock orders concurrent enqueues),
 * so cursors increase across processes and restarts. Not repeated after a lost connection:
 * a COMMIT whose answer was lost may have queued it already.
 */
export async function enqueueCommand(db: Database, catalog: Catalog, gateway: string, command: CommandBody, now: number): Promise<QueuedCommand> {
  checkGateway(gateway);
  const out = await db.write(
    'enqueue command',
    async (c) => {
      const { rows } = await c.query<{ command_cursor: string }>(
        `INSERT INTO outpost.gateways (id, first_seen, command_cursor) VALUES ($1, to_timestamp($2), 1)
         ON CONFLICT (id) DO UPDATE SET command_cursor = outpost.gateways.command_cursor + 1 RETURNING command_cursor`,
        [gateway, now / 1000],
      );
      const cursor = Number(rows[0]!.command_cursor);
      const inserted = await c.query<CommandRow>(
        `INSERT INTO outpost.commands (gateway, cursor, request_id, type, command, state, created_at)
         VALUES ($1, $2, $3, $4, $5, 'queued', to_timestamp($6)) RETURNING ${COLUMNS}`,
        [gateway, cursor, command.requestId, command.type, JSON.stringify(command), now / 1000],
      );
      return queued(inserted.rows[0]!);
    },
    { idempotent: false },
  );
  catalog.commit(gateway, new Map());
  return out;
}

export async function commandsAfter(db: Database, gateway: string, after: number, limit: number): Promise<QueuedCommand[]> {
  if (limit <= 0) return [];
  const { rows } = await db.read(() =>
    db.pool.query<CommandRow>(`SELECT ${COLUMNS} FROM outpost.commands WHERE gateway = $1 AND cursor > $2 ORDER BY cursor LIMIT $3`, [
      gateway,
      Math.max(-1, Math.floor(after)),
      Math.floor(limit),
    ]),
  );
  return rows.map(queued);
}

/** The gateway's answer: `applied` or `refused`, the ack kept with the command (the latest answer wins). */
export async function recordCommandAck(db: Database, gateway: string, cursor: number, ack: CommandAck): Promise<QueuedCommand | undefined> {
  checkGateway(gateway);
  if (!Number.isSafeInteger(cursor)) return undefined;
  return db.write(
    'record command ack',
    async (c) => {
      const { rows } = await c.query<CommandRow>(
        `UPDATE outpost.commands SET state = $3, ack = $4, acked_at = to_timestamp($5)
         WHERE gateway = $1 AND cursor = $2 RETURNING ${COLUMNS}`,
        [gateway, cursor, ack.ok ? 'applied' : 'refused', JSON.stringify(ack), ack.at / 1000],
      );
      return rows[0] ? queued(rows[0]) : undefined;
    },
    { idempotent: true },
  );
}
