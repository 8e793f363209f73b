import type { z } from 'zod';
import type { Router } from 'express';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from './log.js';
import type { Clock } from '../core/clock.js';
import type { Datapoint, DatapointInput, SetpointRequest, Value, ValueMessage } from '../core/datapoint.js';
import type { RangeQuery, StoredValue } from '../storage/store.js';
import type { PortRegistry } from './ports.js';
import type { AuditInput } from './audit/entry.js';
import type { CommandSource } from './audit/actor.js';
import type { RetentionPolicy } from '../storage/retention.js';
import type { Topics } from './topics.js';
import type { ServiceKind, ServiceTypes } from './services.js';

/** What an adapter reports about itself on `outpost/adapter/<id>/status`. */
export interface AdapterStatusDetail {
  /** `running` but with trouble, e.g. one of several devices unreachable. */
  degraded?: boolean;
  /** Human-readable reason, shown on the dashboard. */
  message?: string;
  /** Free, JSON-serialisable detail (per-device states, counters). */
  info?: Record<string, unknown>;
}

export interface PublishValueOptions {
  /** Measurement time (epoch ms); defaults to now. */
  t?: number;
  q?: 'stale' | 'bad';
}

export interface AdapterBus {
  /**
   * Validates, stores durably, then publishes the value. Rejects with an OutpostError on a bad
   * value, and with DP_CONFLICT (nothing stored) when the datapoint is defined in the config or
   * belongs to another adapter (or to plain MQTT): an adapter writes only the datapoints it registered.
   */
  publishValue(id: string, v: Value, options?: PublishValueOptions): Promise<ValueMessage>;
  /** Many points in one durable write (imports, backfill); only the newest per datapoint goes on the bus. All or nothing: one foreign datapoint refuses the batch. */
  publishValues(points: ReadonlyArray<{ id: string; v: Value; t: number; q?: 'stale' | 'bad' }>): Promise<number>;
  /**
   * Raw publish on the embedded broker. Readings and metadata of datapoints
   * (`<prefix>/dp/<id>/value|meta`) are refused (TOPIC_PROTECTED): they go through
   * `publishValue(s)` and `datapoints.register`, which check ownership.
   */
  publish(topic: string, payload: string | Buffer, options?: { retain?: boolean; qos?: 0 | 1 }): Promise<void>;
  /**
   * In-process subscription; returns the unsubscribe function. The host keeps track of it:
   * nothing is delivered once the adapter is stopping, and a subscription the adapter did not
   * remove is removed by the host when the adapter stops, crashes or restarts.
   */
  subscribe(filter: string, handler: (topic: string, payload: Buffer) => void): Promise<() => Promise<void>>;
}

/**
 * The gateway's service registry as an adapter sees it (runtime/services.ts): what it
 * provides to others (a satellite modem for the sync service) and what it uses. What an
 * adapter registered is withdrawn, and its watchers dropped, by the host when it stops.
 */
export interface AdapterServices {
  /** Provides `service` as `(kind, name)` while the adapter runs; returns the function that withdraws it. */
  register<K extends ServiceKind>(kind: K, name: string, service: ServiceTypes[K]): () => void;
  get<K extends ServiceKind>(kind: K, name: string): ServiceTypes[K] | undefined;
  /** Calls `watcher` now and on every change of `(kind, name)`; returns the function that stops it. */
  watch<K extends ServiceKind>(kind: K, name: string, watcher: (service: ServiceTypes[K] | undefined) => void): () => void;
}

export type SetpointHandler = (request: SetpointRequest & { id: string }) => Promise<Value | undefined> | Promise<void>;

export interface AdapterDatapoints {
  /** Registers (or updates) datapoints owned by this adapter; published retained on `.../meta`. */
  register(defs: DatapointInput | DatapointInput[], options?: { onSet?: SetpointHandler }): Promise<Datapoint[]>;
  get(id: string): Datapoint | undefined;
  list(): Datapoint[];
}

export interface AdapterStore {
  query(id: string, range?: RangeQuery): Promise<StoredValue[]>;
  latest(id: string): StoredValue | undefined;
}

export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface AdapterHttp {
  /** Express router mounted at `/` of the gateway's HTTP server. */
  router: Router;
  /** Handles websocket upgrades whose path starts with `prefix`. */
  upgrade(prefix: string, handler: UpgradeHandler): void;
  /**
   * Who made a request on `router` (the login the gateway's guard found) and from which
   * client address (trusted proxies applied): the `actor` and `address` of an audit entry.
   */
  source(req: IncomingMessage, locals: Record<string, unknown>): CommandSource;
}

/** The one object an adapter gets (DESIGN.md, adapter contract). */
export interface AdapterContext {
  /** Instance id from config. */
  id: string;
  log: Logger;
  bus: AdapterBus;
  /**
   * The gateway's topic scheme under `broker.prefix` (`topics.value(id)`, `topics.set(id)`):
   * an adapter that subscribes to datapoint topics builds them here, never from a prefix of
   * its own, so changing `broker.prefix` cannot silently break its subscriptions.
   */
  topics: Pick<Topics, 'prefix' | 'value' | 'set' | 'setResult' | 'schedule' | 'meta' | 'error' | 'adapterStatus' | 'parseDatapointTopic'>;
  /** Services provided and used by adapters and the runtime of this gateway (never process-wide globals). */
  services: AdapterServices;
  datapoints: AdapterDatapoints;
  store: AdapterStore;
  http: AdapterHttp;
  /** Aborted when the adapter is being stopped. */
  signal: AbortSignal;
  clock: Clock;
  /** Shared physical resources (serial ports), reference-counted. */
  ports: PortRegistry;
  /** This instance's private directory under the data directory (created before start). */
  dataDir: string;
  gateway: { id: string; timezone: string };
  /**
   * Applies a setpoint that arrived through this adapter (a downlink, a satellite
   * command) with the same validation and routing as a local write.
   */
  setpoint(id: string, body: unknown): Promise<{ id: string; v: Value; t: number }>;
  /**
   * Records a command this adapter carried out for someone (a charger's remote start, a
   * reset) in the gateway's audit trail. Never throws; secrets must not be in `details`.
   */
  audit(entry: AuditInput): void;
  /**
   * Raw retention as storage applies it (`storage.retention`): `effectiveRawDays(id,
   * ctx.datapoints.get(id))` is how many days a reading of `id` is kept (null: for ever), the
   * config's rules first, then the datapoint's own `retention`, then the default; `explain`
   * also says which decided. Absent where no retention pass runs (memory storage). An import
   * warns with it when a file brings readings the next pass deletes (storage/retention.ts,
   * `RetentionCheck`).
   */
  retention?: Pick<RetentionPolicy, 'effectiveRawDays' | 'explain'>;
  /** Updates the adapter's status topic (the host owns `state`). */
  setStatus(detail: AdapterStatusDetail): void;
  /** Reports a fatal failure after start: the host logs it once, stops and restarts the adapter with backoff. */
  fail(err: unknown): void;
}

export interface AdapterInstance {
  /**
   * Throws to fail the start: the host retries with backoff, unless the error is an
   * OutpostError with `retryable: false` (a config or template error), which no retry can
   * mend: the adapter is then `failed`, with the message on its status, until a restart.
   */
  start(ctx: AdapterContext): Promise<void>;
  /** Must release every resource; the host gives it `stopTimeoutMs`. */
  stop(): Promise<void>;
}

/** One thing `outpost check` (and `start`, before anything starts) finds wrong in an adapter's options. */
export interface CheckProblem {
  /** Dotted path inside the adapter's options (`buses.0.devices.1.template`); empty for the whole entry. */
  path: string;
  message: string;
}

/** What an adapter's `check` may know besides its options. */
export interface CheckEnv {
  /** Instance id (`id:` under `adapters:`). */
  id: string;
  /** Folder of the config file (cwd for a config that comes from no file). */
  configDir: string;
  /** Relative paths in options resolve against this, as they do at start (the process's cwd). */
  cwd: string;
  /** The gateway's data directory, absolute. */
  dataDir: string;
  gateway: { id: string; timezone: string };
}

/**
 * How a status value is shown. Numbers: `number` (up to 2 decimals), `count` (integer with
 * thousands separators), `percent` (0-100), `bytes`, `duration` (milliseconds, as "2 min 5 s"),
 * `time` (epoch ms, as a local time); `boolean` (yes/no unless `enum` says otherwise); `text`.
 * Collections: `list` (an array of scalars, joined), `map` (an object of scalars, as
 * "key value · key value"), `phases` (a three-phase triple, as "L1 16 A · L2 …"), `fields`
 * (one object, its `fields` as labelled lines) and `rows` (an array, or an object by name, of
 * objects: a small table, one row each, with `fields` as its columns).
 */
export type StatusFormat = 'text' | 'number' | 'count' | 'percent' | 'bytes' | 'duration' | 'time' | 'boolean' | 'list' | 'map' | 'phases' | 'fields' | 'rows';

/** A value's tone on the card: `warn` and `bad` are coloured, `good` is quiet. */
export type StatusTone = 'good' | 'warn' | 'bad';

/** One field of an adapter's status `info` as the dashboard shows it (JSON: served to the browser). */
export interface StatusField {
  /** What a technician calls it ("Credits today"), not the key. */
  label: string;
  /** Default: from the value (number, boolean, text, list, map). */
  format?: StatusFormat;
  /** After the number ("A", "credits"); for `list`, `map` and `phases` after each item. */
  unit?: string;
  /** Value (as a string: `"4"`, `"true"`, `"failing"`) → word; for `list`/`map`, applied to each item (and to a map's keys). */
  enum?: Readonly<Record<string, string>>;
  /** Value (as in `enum`) → tone, e.g. `{ failing: 'bad' }`. */
  tones?: Readonly<Record<string, StatusTone>>;
  /** A number above this is shown as a warning (a deferred ring alert, a dropped batch). */
  warnAbove?: number;
  /** Inside `rows`: shown on the row's detail line, not as a column (a last error, a list of points). */
  detail?: boolean;
  /** `fields` and `rows`: the fields of the object(s) inside, in the order shown. */
  fields?: Readonly<Record<string, StatusField>>;
  /** `rows` given as an object by name: the heading of the name column ("Device"). */
  key?: string;
  /** A sentence shown as the label's tooltip. */
  help?: string;
  /** Kept out of the card (duplicated elsewhere, or for machines only). */
  hidden?: boolean;
}

/**
 * The status schema of an adapter type: labels, units, enumerations and formats for the fields
 * its `ctx.setStatus({ info })` publishes, so the dashboard's adapter card reads as words and
 * tables, never as JSON. Fields it does not list are still shown, by their key.
 * runtime/status-schema.ts validates one and finds the keys of a status it does not cover.
 */
export interface StatusSchema {
  fields: Readonly<Record<string, StatusField>>;
}

export interface AdapterType<S extends z.ZodObject = z.ZodObject> {
  type: string;
  description: string;
  /** How the dashboard shows this type's status `info` (GET /api/adapters/types); optional. */
  statusSchema?: StatusSchema;
  /** Options of one instance (besides `id`, `type`, `enabled`); strict, so typos are errors. */
  schema: S;
  /** Does no I/O: everything that touches the world happens in `start`. */
  create(options: z.output<S>, instance: { id: string }): AdapterInstance;
  /**
   * Everything `start` would refuse that the schema cannot see (template and profile files,
   * names they define, files the options name). No side effects: it may read files, never
   * write, open ports or connect. `outpost check` and the gateway's start both run it.
   */
  check?(options: z.output<S>, env: CheckEnv): CheckProblem[] | Promise<CheckProblem[]>;
  /**
   * Shared devices (serial ports) this instance acquires at start, with the settings it passes
   * to `ctx.ports.acquire`: the config check refuses one device claimed with two settings.
   */
  ports?(options: z.output<S>): PortClaim[];
}

/** A device an adapter opens through `ctx.ports`; `path` is the option that names it. */
export interface PortClaim {
  path: string;
  device: string;
  settings: Record<string, unknown>;
}

export function defineAdapter<S extends z.ZodObject>(def: AdapterType<S>): AdapterType<S> {
  return def;
}
