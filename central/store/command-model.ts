import { OutpostError } from '../../core/errors.js';
import '../errors.js';
import type { CommandAck, CommandBody, CommandFilter, CommandSend, CommandState, EnqueueOptions, IngestVia, QueuedCommand } from './contract.js';

/**
 * The command state machine (contract.ts `CommandState`), one copy for every store: a store
 * reads the command under its lock (LevelDB: the per-gateway lock; PostgreSQL: `FOR UPDATE`),
 * asks these functions for the next version and writes it.
 */

/** A command not sent for this long is expired unless the request says otherwise. */
export const DEFAULT_COMMAND_TTL_MS = 24 * 3600_000;
/** Longest a command may be asked to live. */
export const MAX_COMMAND_TTL_MS = 30 * 24 * 3600_000;
/** Sends kept per command: the first one and the newest ones (a resend loop must not grow it). */
export const MAX_SENDS = 20;
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const MAX_LIST = 1000;

export const COMMAND_STATES: readonly CommandState[] = ['queued', 'sent', 'applied', 'refused', 'expired'];

export function isCommandState(s: unknown): s is CommandState {
  return typeof s === 'string' && (COMMAND_STATES as readonly string[]).includes(s);
}

/** A new command, checked. */
export function newCommand(cursor: number, command: CommandBody, options: EnqueueOptions | undefined, now: number): QueuedCommand {
  if (typeof command.requestId !== 'string' || !REQUEST_ID.test(command.requestId))
    throw new OutpostError('BAD_REQUEST', 'a command\'s "requestId" is 1-128 characters of A-Z a-z 0-9 . _ : -');
  if (typeof command.type !== 'string' || command.type.length === 0) throw new OutpostError('BAD_REQUEST', 'a command needs a "type"');
  const expiresAt = options?.expiresAt ?? now + DEFAULT_COMMAND_TTL_MS;
  if (!Number.isSafeInteger(expiresAt)) throw new OutpostError('BAD_REQUEST', '"expiresAt" is epoch ms');
  return {
    cursor,
    command,
    state: expiresAt <= now ? 'expired' : 'queued',
    createdAt: now,
    expiresAt,
    ...(expiresAt <= now ? { expiredAt: now } : {}),
    ...(options?.group !== undefined ? { group: options.group } : {}),
    ...(options?.by !== undefined ? { by: options.by } : {}),
  };
}

/** Whether a link may still send it. */
export function sendable(c: QueuedCommand, now: number): boolean {
  return (c.state === 'queued' || c.state === 'sent') && c.expiresAt > now;
}

/** After a send: queued|sent → sent with the send appended; anything else unchanged (undefined). */
export function withSend(c: QueuedCommand, send: CommandSend): QueuedCommand | undefined {
  if (c.state !== 'queued' && c.state !== 'sent') return undefined;
  const sends = [...(c.sends ?? []), send];
  if (sends.length > MAX_SENDS) sends.splice(1, sends.length - MAX_SENDS);
  return { ...c, state: 'sent', sends };
}

/** After an ack: `applied` is final; anything else takes the gateway's answer (undefined: unchanged). */
export function withAck(c: QueuedCommand, ack: CommandAck): QueuedCommand | undefined {
  if (c.state === 'applied') return undefined;
  return { ...c, state: ack.ok ? 'applied' : 'refused', ack };
}

/** At `now`: queued|sent past `expiresAt` → expired (undefined: unchanged). */
export function withExpiry(c: QueuedCommand, now: number): QueuedCommand | undefined {
  if ((c.state !== 'queued' && c.state !== 'sent') || c.expiresAt > now) return undefined;
  return { ...c, state: 'expired', expiredAt: now };
}

/** The send that carried MT counter `counter`, if this command had one. */
export function sentWithCounter(c: QueuedCommand, counter: number): boolean {
  return (c.sends ?? []).some((s) => s.via === 'iridium' && s.counter === counter);
}

export function listLimit(filter: CommandFilter): number {
  const limit = filter.limit ?? 100;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIST) throw new OutpostError('BAD_REQUEST', `"limit" is an integer from 1 to ${MAX_LIST}`);
  return limit;
}

export function matches(c: QueuedCommand, filter: CommandFilter): boolean {
  return (filter.state === undefined || c.state === filter.state) && (filter.group === undefined || c.group === filter.group);
}

/**
 * A gateway's answer to a command as it arrives (MQTT `<root>/cmd/ack`, the HTTP poll
 * downlink's ack), `ok` already checked to be a boolean: only the known fields, strings
 * bounded (the code 64 characters, the message 500) — a gateway does not fill the store.
 */
export function ackFromWire(ack: Record<string, unknown> & { ok: boolean }, at: number, via: IngestVia): CommandAck {
  const error = ack.error as { code?: unknown; message?: unknown; retryable?: unknown } | undefined;
  return {
    ok: ack.ok,
    ...(ack.result !== undefined ? { result: ack.result } : {}),
    ...(error && typeof error.code === 'string'
      ? {
          error: {
            code: error.code.slice(0, 64),
            ...(typeof error.message === 'string' ? { message: error.message.slice(0, 500) } : {}),
            ...(typeof error.retryable === 'boolean' ? { retryable: error.retryable } : {}),
          },
        }
      : {}),
    ...(typeof ack.t === 'number' ? { t: ack.t } : {}),
    at,
    via,
  };
}
