import type { Value } from '../../core/datapoint.js';
import type { AggregatePoint, AggregateQuery, RangeQuery, StoredValue } from '../../storage/store.js';
import type { IngestRecords } from './record-columns.js';

export type { AggregatePoint, AggregateQuery, IngestRecords, RangeQuery, StoredValue };

/**
 * The storage contract of Outpost Central: what ingest writes and the API reads, whatever
 * the engine. Implementations: `level.ts` (our LevelDB engine, one process) now, PostgreSQL
 * next; both must pass `test/central/store-contract.ts`. The semantics, which an engine may
 * not weaken:
 *
 * - **Idempotent by (gateway, seq).** A record whose outbox `seq` is already stored for its
 *   gateway is a duplicate: not stored again, counted in `duplicates`. The first copy stored
 *   wins — a satellite copy (rounded by the Iridium codec) is not replaced by the backfill of
 *   the same seq (runtime/sync/README.md, "Dedupe"). Any number of concurrent writers (HTTP
 *   retries, receivers on one shared subscription, satellite and backfill racing) store each
 *   seq once. PostgreSQL: a `(gateway, seq)` key taken with `ON CONFLICT DO NOTHING` in the
 *   transaction that inserts the readings.
 * - **One reading per (gateway, datapoint, t)**, as on the gateway (storage keeps one reading
 *   per datapoint and millisecond): a fresh seq with the `t` of a stored reading replaces its
 *   value (a re-imported trend file on the site). Records without a seq (Iridium codec
 *   version 1, stand-alone forwarding) are idempotent by this alone.
 * - **Durable on resolve.** `insertReadings` resolves once readings, seq marks and the receipt
 *   are committed together (one atomic write): ingest acknowledges (PUBACK, HTTP 2xx) only
 *   then, and a crash between two writes cannot leave readings without their marks.
 * - Times are epoch ms (UTC); ranges are inclusive; aggregates follow storage/rollups.ts.
 */
export interface CentralStore {
  /** `level`, `postgres`: shown by /healthz and the metrics. */
  readonly kind: string;
  open(): Promise<void>;
  close(): Promise<void>;
  /** Whether writes are taken now (`read-only` after a write error; storage/DESIGN.md "Full disk"). */
  health(): StoreHealth;

  /**
   * Stores the records not stored before (by seq), with the receipt, in one durable commit.
   * Ingest hands them over as columns (record-columns.ts); objects are taken alike.
   */
  insertReadings(gateway: string, records: IngestRecords, receipt: Receipt): Promise<InsertResult>;
  /** A status document or message from the gateway (MQTT `<root>/status`, HTTP `outpost-status/1`), merged as `GatewayStatus` says. */
  recordStatus(gateway: string, status: GatewayStatus): Promise<void>;
  /** A satellite message that carried no readings (an MT acknowledgement): counted for credits and position. */
  recordSatellite(gateway: string, message: SatelliteMessage): Promise<void>;

  /** What the store learned of each gateway that ever sent anything. */
  gatewayStates(): Promise<GatewayState[]>;
  gatewayState(gateway: string): Promise<GatewayState | undefined>;
  /** Satellite messages received for a gateway in [from, to] (by transmit time), and the credits they cost. */
  satelliteUsage(gateway: string, from: number, to: number): Promise<SatelliteUsage>;

  /** Datapoints seen, of one gateway or of all, each with its newest reading. */
  datapoints(gateway?: string): Promise<CentralDatapoint[]>;
  latest(gateway: string, id: string): Promise<StoredValue | undefined>;
  query(gateway: string, id: string, range?: RangeQuery): Promise<StoredValue[]>;
  queryAggregate(gateway: string, id: string, query: AggregateQuery): Promise<AggregatePoint[]>;
  /** Readings stored (one per (datapoint, t)) of a gateway, or of one of its datapoints. */
  countReadings(gateway: string, id?: string): Promise<number>;
  /** Distinct outbox seqs stored for a gateway. */
  countSeqs(gateway: string): Promise<number>;

  /**
   * The command queue of a gateway (issue 26 fills it; the HTTP poll downlink serves it now).
   * `cursor` is a per-gateway number, increasing; `commandsAfter` returns commands by cursor.
   */
  enqueueCommand(gateway: string, command: CommandBody, options?: EnqueueOptions): Promise<QueuedCommand>;
  commandsAfter(gateway: string, after: number, limit: number): Promise<QueuedCommand[]>;
  /** The gateway's answer to the command at `cursor` (undefined: no such command); see `ackedState`. */
  recordCommandAck(gateway: string, cursor: number, ack: CommandAck): Promise<QueuedCommand | undefined>;
  /** One command, by cursor, by requestId, or by the counter of an MT message that carried it. */
  command(gateway: string, ref: CommandRef): Promise<QueuedCommand | undefined>;
  /** Commands of one gateway or all, newest first, optionally of one state or group. */
  listCommands(filter: CommandFilter): Promise<GatewayCommand[]>;
  /** A link sent it (queued|sent → sent, the send appended; a settled or expired command is left as it is). */
  markCommandSent(gateway: string, cursor: number, send: CommandSend): Promise<QueuedCommand | undefined>;
  /** queued|sent commands whose `expiresAt` is at or before `now` become `expired`; answers those. */
  expireCommands(now: number): Promise<QueuedCommand[]>;
  /**
   * The next Iridium MT replay counter of a gateway, durable before it is answered: the larger of
   * the last one + 1 and `floor` (central passes a clock-derived floor so that a store made anew
   * still counts above what the modem's MtVerifier accepted last).
   */
  nextMtCounter(gateway: string, floor: number): Promise<number>;
}

/** Links a command goes over: MQTT `cmd/*`, the HTTP poll downlink, Iridium MT via RockBLOCK. */
export type CommandLink = 'mqtt' | 'http' | 'iridium';

export type CommandRef = { cursor: number } | { requestId: string } | { mtCounter: number };

export interface EnqueueOptions {
  /** Not sent after this (epoch ms); default: created + 24 h. */
  expiresAt?: number;
  /** The group id shared by the commands of one request to a tagged group. */
  group?: string;
  /** Who asked (the web user or token), kept with the command. */
  by?: string;
}

export interface CommandFilter {
  gateway?: string;
  state?: CommandState;
  group?: string;
  /** At most this many (default 100, at most 1000). */
  limit?: number;
}

export interface CommandSend {
  at: number;
  via: CommandLink;
  /** The MT message's replay counter (Iridium): its MO acknowledgement names it. */
  counter?: number;
}

export interface StoreHealth {
  state: 'ok' | 'read-only';
  error?: string;
}

/** A reading as the gateway's outbox numbered it (runtime/sync/codec.ts `wireRecords`). */
export interface IngestRecord {
  /** Outbox sequence number; absent only for Iridium codec version 1 readings. */
  seq?: number;
  id: string;
  t: number;
  v: Value;
  q?: 'stale' | 'bad';
}

/** How records arrived: `mqtt` (shared subscription), `http` (the gateway's http link), `rockblock` (the Rock7 webhook). */
export type IngestVia = 'mqtt' | 'http' | 'rockblock';
/** The gateway's lanes (`history` in order, `priority` = live lane), and the satellite. */
export type IngestLane = 'history' | 'priority' | 'satellite';

export interface Receipt {
  via: IngestVia;
  lane: IngestLane;
  /** The batch's idempotency key (`<gw>:<first>-<last>`), when it had one. */
  key?: string;
  /** Arrival time at central, epoch ms. */
  at: number;
  /** The MO message the records came in, recorded in the same commit (credits, position). */
  satellite?: SatelliteMessage;
}

export interface InsertResult {
  stored: number;
  duplicates: number;
}

/**
 * A gateway's status. `recordStatus` does not simply keep the newest commit: the reported
 * status (`gatewayState().status`) is merged from what was committed (store/status-order.ts
 * `mergeStatus`, the same in every store):
 *
 * - `state`, `since`, `session` are the newest session's: the highest `session` wins, and
 *   within one session `offline` beats `online` (then the later commit). A will of session 2
 *   committed after the `online` of session 3 changes nothing; an `online` of session 3
 *   committed after its `offline` changes nothing. A status with a state but no `session`
 *   (gateways before sessions) ranks as the session of its arrival `at`: among those the newest
 *   arrival wins. A status of an older session is ignored whole.
 * - `storage` is the newest storage report: a status without a state (HTTP `outpost-status/1`,
 *   a RockBLOCK storage state) replaces `storage` and keeps the connection part; an accepted
 *   `online` replaces `storage` with its own (none means ok); an accepted `offline` keeps it
 *   unless it carries one.
 * - `at` and `via` are those of the newest commit that changed it (`at` never goes back).
 */
export interface GatewayStatus {
  /** Arrival time at central. */
  at: number;
  via: IngestVia;
  /** MQTT retained status: online (with `since`), offline (its will, or a clean stop). */
  state?: 'online' | 'offline';
  since?: number;
  /** The MQTT connection the state belongs to (epoch ms chosen by the gateway before each CONNECT, increasing). */
  session?: number;
  /** The gateway's storage state when it is not ok (read-only alarm), or its recovery. */
  storage?: { state: string; error?: string; since?: number };
}

export interface SatelliteMessage {
  imei: string;
  /** RockBLOCK's MO message sequence number (0..65535, wraps). */
  momsn: number;
  /** When the modem sent it (Rock7 `transmit_time`), epoch ms. */
  transmitTime: number;
  bytes: number;
  /** Credits billed (one per started 50 bytes). */
  credits: number;
  /** First byte of the message: readings (codec 1/2) or an acknowledgement of MT commands (3). */
  kind: 'readings' | 'ack';
  /** Iridium's position estimate of the modem (`iridium_latitude`, `iridium_longitude`, `iridium_cep` km). */
  lat?: number;
  lon?: number;
  cepKm?: number;
  /** An acknowledgement's content: per MT counter, the result of each op. */
  acks?: Array<{ counter: number; results: string[] }>;
}

export interface SatelliteUsage {
  messages: number;
  bytes: number;
  credits: number;
}

export interface GatewayState {
  id: string;
  /** Newest arrival of anything from it (readings, status, satellite), epoch ms. */
  lastSeen?: number;
  /** How that arrived. */
  lastVia?: IngestVia;
  /** Newest readings receipt: lane, key, how many stored and dropped. */
  lastReceipt?: { at: number; via: IngestVia; lane: IngestLane; key?: string; stored: number; duplicates: number };
  /** Newest status document or message. */
  status?: GatewayStatus;
  /** Newest satellite message (its position is the site's, roughly). */
  satellite?: SatelliteMessage;
}

export type DatapointType = 'number' | 'boolean' | 'string' | 'json' | 'unknown';

export interface CentralDatapoint {
  gateway: string;
  id: string;
  /** From the newest reading (the gateway sends no definitions upstream). */
  type: DatapointType;
  latest?: StoredValue;
}

/** A command as the HTTP poll downlink serves it (runtime/sync/http-downlink.ts), without its cursor. */
export interface CommandBody {
  requestId: string;
  type: string;
  [key: string]: unknown;
}

/**
 * queued → sent → applied | refused, or → expired when `expiresAt` passes first (it is then sent
 * no more). An ack decides whatever came before: a command that expired while its copy was on the
 * way and was applied says `applied` (with `expiredAt`) — the state says what happened at the
 * site. `applied` is final: a later refusal (another link's copy) is not recorded over it.
 */
export type CommandState = 'queued' | 'sent' | 'applied' | 'refused' | 'expired';

export interface CommandAck {
  ok: boolean;
  result?: unknown;
  error?: { code: string; message?: string; retryable?: boolean };
  /** The gateway's time of the answer. */
  t?: number;
  /** Arrival at central. */
  at: number;
  via: IngestVia;
}

export interface QueuedCommand {
  cursor: number;
  command: CommandBody;
  state: CommandState;
  createdAt: number;
  /** Not sent after this (epoch ms). */
  expiresAt: number;
  /** When it became `expired` (kept when a late ack settles it). */
  expiredAt?: number;
  group?: string;
  by?: string;
  /** Every send, oldest first (at most MAX_SENDS kept: the first and the newest). */
  sends?: CommandSend[];
  ack?: CommandAck;
}

/** A command with the gateway it is for (lists across gateways). */
export type GatewayCommand = QueuedCommand & { gateway: string };

/** The type of a reading's value, as the gateway's data model names it (core/datapoint.ts). */
export function typeOfValue(v: Value | undefined): DatapointType {
  if (v === undefined || v === null) return 'unknown';
  if (typeof v === 'number') return 'number';
  if (typeof v === 'boolean') return 'boolean';
  if (typeof v === 'string') return 'string';
  return 'json';
}
