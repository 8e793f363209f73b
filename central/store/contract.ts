import type { Value } from '../../core/datapoint.js';
import type { AggregatePoint, AggregateQuery, RangeQuery, StoredValue } from '../../storage/store.js';

export type { AggregatePoint, AggregateQuery, RangeQuery, StoredValue };

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

  /** Stores the records not stored before (by seq), with the receipt, in one durable commit. */
  insertReadings(gateway: string, records: readonly IngestRecord[], receipt: Receipt): Promise<InsertResult>;
  /** A status document or message from the gateway (MQTT `<root>/status`, HTTP `outpost-status/1`). */
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
  enqueueCommand(gateway: string, command: CommandBody): Promise<QueuedCommand>;
  commandsAfter(gateway: string, after: number, limit: number): Promise<QueuedCommand[]>;
  /** The gateway's answer to the command at `cursor` (undefined: no such command). */
  recordCommandAck(gateway: string, cursor: number, ack: CommandAck): Promise<QueuedCommand | undefined>;
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

export interface GatewayStatus {
  /** Arrival time at central. */
  at: number;
  via: IngestVia;
  /** MQTT retained status: online (with `since`), offline (its will, or a clean stop). */
  state?: 'online' | 'offline';
  since?: number;
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

export type CommandState = 'queued' | 'applied' | 'refused';

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
  ack?: CommandAck;
}

/** The type of a reading's value, as the gateway's data model names it (core/datapoint.ts). */
export function typeOfValue(v: Value | undefined): DatapointType {
  if (v === undefined || v === null) return 'unknown';
  if (typeof v === 'number') return 'number';
  if (typeof v === 'boolean') return 'boolean';
  if (typeof v === 'string') return 'string';
  return 'json';
}
