import type { z } from 'zod';
import type { Router } from 'express';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from './log.js';
import type { Clock } from '../core/clock.js';
import type { Datapoint, DatapointInput, SetpointRequest, Value, ValueMessage } from '../core/datapoint.js';
import type { RangeQuery, StoredValue } from '../storage/store.js';
import type { PortRegistry } from './ports.js';
import type { AuditInput } from './audit/audit-log.js';
import type { CommandSource } from './audit/actor.js';
import type { RetentionPolicy } from '../storage/retention.js';

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
  /** Validates, stores durably, then publishes the value. Rejects with an OutpostError on a bad value. */
  publishValue(id: string, v: Value, options?: PublishValueOptions): Promise<ValueMessage>;
  /** Many points in one durable write (imports, backfill); only the newest per datapoint goes on the bus. */
  publishValues(points: ReadonlyArray<{ id: string; v: Value; t: number; q?: 'stale' | 'bad' }>): Promise<number>;
  /** Raw publish on the embedded broker. */
  publish(topic: string, payload: string | Buffer, options?: { retain?: boolean; qos?: 0 | 1 }): Promise<void>;
  /** In-process subscription; returns the unsubscribe function. */
  subscribe(filter: string, handler: (topic: string, payload: Buffer) => void): Promise<() => Promise<void>>;
}

export type SetpointHandler = (request: SetpointRequest & { id: string }) => Promise<Value | void>;

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
  start(ctx: AdapterContext): Promise<void>;
  /** Must release every resource; the host gives it `stopTimeoutMs`. */
  stop(): Promise<void>;
}

export interface AdapterType<S extends z.ZodObject = z.ZodObject> {
  type: string;
  description: string;
  /** Options of one instance (besides `id`, `type`, `enabled`); strict, so typos are errors. */
  schema: S;
  /** Does no I/O: everything that touches the world happens in `start`. */
  create(options: z.output<S>, instance: { id: string }): AdapterInstance;
}

export function defineAdapter<S extends z.ZodObject>(def: AdapterType<S>): AdapterType<S> {
  return def;
}
