import { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';
import type { OutboxRecord } from '../../storage/store.js';
import type { OutpostError } from '../../core/errors.js';

/**
 * One slice of the outbox on its way upstream. `key` is the idempotency key
 * (`<gatewayId>:<first>-<last>`): a receiver that keeps the sequence ranges it has
 * already stored per gateway drops anything resent (at-least-once delivery).
 */
export interface Batch {
  key: string;
  gatewayId: string;
  /** First and last outbox sequence covered (inclusive). */
  first: number;
  last: number;
  records: readonly OutboxRecord[];
  /**
   * `history`: contiguous outbox range; its acknowledgement advances the cursor.
   * `priority`: latest values and alarms picked out of the unsent backlog (live lane,
   * satellite fallback); acknowledged but never moves the cursor, so the same records
   * reach the receiver again in the history stream and are dropped there by sequence.
   */
  lane: 'history' | 'priority';
}

/**
 * `blocked` is never a link's own state: the service reports it while the receiver refuses
 * records permanently and the drain isolates them (see `isolate.ts`); the link is reachable.
 */
export type LinkState = 'stopped' | 'connecting' | 'up' | 'down' | 'blocked';

/** A setpoint or command from upstream, whatever the transport (MQTT topic, HTTP poll, Iridium MT). */
export interface DownlinkCommand {
  /** Transport detail for logs, e.g. the MQTT topic. */
  source: string;
  /** Command name when the transport carries it (MQTT: the topic level after `cmd/`); else `type` in the payload. */
  name?: string;
  payload: Buffer;
  /**
   * Transports that deliver the acknowledgement themselves (HTTP poll: durably, with its
   * poll cursor) pass this; the service then hands the ack here instead of `sendAck`.
   */
  reply?: (ack: DownlinkAck) => void;
  /**
   * Refused by the transport before it reached the downlink (signature, age, retained and
   * superseded: `mqtt-commands.ts`). The downlink answers with this error, counted and logged
   * like every refusal, and does not remember it under the requestId.
   */
  refused?: { error: OutpostError; requestId: string | null };
  /**
   * Hex of the 8-byte reference to the central requestId (`requestRef`, command-memory.ts) when the
   * transport names the command otherwise (Iridium MT: by its counter). The downlink's memory
   * finds a command answered over any link by it.
   */
  ref?: string;
}

export interface DownlinkAck {
  requestId: string | null;
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string; retryable: boolean };
  t: number;
}

export interface LinkEvents {
  state(state: LinkState, error?: string): void;
  command(cmd: DownlinkCommand): void;
}

/**
 * The contract every upstream link implements (MQTT, HTTP, and the Iridium SBD modem
 * in `satellite-link.ts`). A link only moves bytes: it
 * never reads the outbox or touches the cursor. `send` resolves once the upstream
 * acknowledged the batch durably (PUBACK, 2xx, SBD MO success) and rejects with an
 * OutpostError otherwise (`retryAfterMs` in details is honoured by the scheduler).
 */
/** The gateway's storage state as links report it upstream. */
export type StorageReport = { state: 'ok'; since: number } | { state: 'read-only'; error: string; since: number };

export interface Link {
  readonly name: string;
  /** `primary` links carry the history; `fallback` links carry priority data only. */
  readonly role: 'primary' | 'fallback';
  readonly state: LinkState;
  readonly lastError: string | undefined;
  /** Most records one `send` accepts (the scheduler cuts batches to it). */
  readonly maxBatchRecords: number;
  /** No connection to watch (HTTP): while down, the next send after backoff is the probe. */
  readonly connectionless?: boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Resolves with the payload bytes sent, once acknowledged. */
  send(batch: Batch): Promise<number>;
  /**
   * Metered links (satellite): of the priority candidates, in priority order, the records
   * one `send` will carry (those it can encode, cut to one message and to its budget).
   * `isAlarm` tells which candidates are alarms. Without it, `maxBatchRecords` cuts.
   */
  fit?(ordered: readonly OutboxRecord[], isAlarm: (r: OutboxRecord) => boolean): OutboxRecord[];
  /** Publishes a downlink acknowledgement upstream (links without a downlink omit it). */
  sendAck?(ack: DownlinkAck): Promise<void>;
  /**
   * Storage went read-only (or recovered): links with a status channel say so at once. The
   * alarm cannot go through the outbox, which is in the storage that refuses writes.
   */
  reportStorage?(storage: StorageReport): void;
  on<E extends keyof LinkEvents>(event: E, listener: LinkEvents[E]): this;
  off<E extends keyof LinkEvents>(event: E, listener: LinkEvents[E]): this;
}

/** Idempotency key of a history batch: the contiguous outbox range it covers, so a resend of the same range has the same key. */
export function batchKey(gatewayId: string, first: number, last: number): string {
  return `${gatewayId}:${first}-${last}`;
}

/**
 * Idempotency key of a priority batch (live lane, fallback): a pick of records out of a
 * range, so it names the very records (a digest of their sequence numbers). With the
 * history key's form, a receiver that drops requests by key would drop the history batch
 * of the same range as already stored, although the priority batch held only a few of its records.
 */
export function priorityKey(gatewayId: string, records: readonly OutboxRecord[]): string {
  const digest = createHash('sha256');
  for (const r of records) digest.update(`${r.seq},`);
  return `${gatewayId}:p${records[0]?.seq ?? 0}-${records.at(-1)?.seq ?? 0}.${digest.digest('hex').slice(0, 12)}`;
}

/**
 * What every link class shares: the state and last error it reports, and the typed
 * `state` event (`LinkEvents`). Subclasses set `error` and call `setState`.
 */
export abstract class LinkBase extends EventEmitter {
  protected current: LinkState = 'stopped';
  protected error: string | undefined;

  get state(): LinkState {
    return this.current;
  }

  get lastError(): string | undefined {
    return this.error;
  }

  /** Emits `state` (with the last error) only on a change. */
  protected setState(state: LinkState): void {
    if (state === this.current) return;
    this.current = state;
    this.emit('state', state, this.error);
  }

  override on<E extends keyof LinkEvents>(event: E, listener: LinkEvents[E]): this {
    return super.on(event, listener);
  }

  override off<E extends keyof LinkEvents>(event: E, listener: LinkEvents[E]): this {
    return super.off(event, listener);
  }
}
