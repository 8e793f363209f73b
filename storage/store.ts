import type { Datapoint, Value } from '../core/datapoint.js';
import type { Level } from 'level';
import type { AggregatePoint, AggregateQuery, ResolutionName } from './rollups.js';

export type { AggregatePoint, AggregateQuery, Aggregation } from './rollups.js';

/** One stored reading of one datapoint. */
export interface StoredValue {
  t: number;
  v: Value;
  q?: 'stale' | 'bad';
}

export interface PointRecord extends StoredValue {
  id: string;
}

/** A point as it sits in the outbox, numbered by a global, gap-free-at-write sequence. */
export interface OutboxRecord extends PointRecord {
  seq: number;
}

export interface WriteOptions {
  /**
   * Also queue the points for upstream sync (default true). A restore of a backup passes
   * false: that history was synced from the original gateway already, and sending it again
   * under new sequence numbers would defeat the receiver's deduplication.
   */
  outbox?: boolean;
}

export interface RangeQuery {
  /** Inclusive, epoch ms. */
  from?: number;
  /** Inclusive, epoch ms. */
  to?: number;
  limit?: number;
  order?: 'asc' | 'desc';
}

export interface StoreStats {
  /** Points accepted by `write` but not yet durable. */
  pending: number;
  /** Points made durable since open. */
  written: number;
  /** Group commits (one fsync each when sync is on) since open. */
  commits: number;
  /** Highest outbox sequence number handed out. */
  lastSeq: number;
  /** Highest outbox sequence number acknowledged upstream (records up to it are deleted). */
  ackedSeq: number;
  /** Outbox records not yet acknowledged upstream. */
  outboxDepth: number;
  /** True while writes are refused after a write error (disk full, I/O error). */
  readOnly: boolean;
  /** Last write error, if storage is in the alarm state. */
  error?: string;
  /** While read-only and waiting for space to recover: free bytes on its file system and the bytes recovery needs. */
  room?: { freeBytes: number; neededBytes: number };
}

/** What deleting a datapoint removed (`Store.deleteDatapoint`). */
export interface DatapointDeletion {
  /** Raw readings deleted. */
  points: number;
  /** Rollup buckets deleted, all resolutions together. */
  rollups: number;
  /** A stored definition was deleted. */
  definition: boolean;
}

/** What is stored of one datapoint (`Store.storedPoints`): its raw readings and their time span. */
export interface StoredPoints {
  points: number;
  /** Rollup buckets stored, all resolutions together (0 where rollups are computed at query time). */
  rollups: number;
  /** Time of the oldest and the newest raw reading (absent when there is none). */
  oldest?: number;
  newest?: number;
}

/** A consistent, read-only view of a store at one moment (what a backup of a running gateway reads). */
export interface StoreReadView {
  query(id: string, range?: RangeQuery): Promise<StoredValue[]>;
  listDatapoints(): Promise<Datapoint[]>;
  /** Ids that have raw points (with or without a definition). */
  ids(): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * The storage contract. `write` resolves only once the points are durable (with
 * `sync`, they survive kill -9 and power loss); every implementation passes
 * `test/storage/contract.ts`.
 */
export interface Store {
  open(): Promise<void>;
  close(): Promise<void>;
  /** Writes points and their outbox records in one atomic batch. Same (id, t) overwrites: imports are idempotent. */
  write(points: readonly PointRecord[], options?: WriteOptions): Promise<void>;
  query(id: string, range?: RangeQuery): Promise<StoredValue[]>;
  /** Newest stored value of a datapoint, from memory. */
  latest(id: string): StoredValue | undefined;
  putDatapoint(dp: Datapoint): Promise<void>;
  /** Several definitions in one durable write. */
  putDatapoints(dps: readonly Datapoint[]): Promise<void>;
  listDatapoints(): Promise<Datapoint[]>;
  /** Outbox records with seq > `afterSeq`, oldest first. */
  readOutbox(afterSeq: number, limit: number): Promise<OutboxRecord[]>;
  /**
   * Upstream acknowledged every record up to `uptoSeq`: deletes them and remembers the
   * mark durably (never lowered). Returns how many records were deleted.
   */
  ackOutbox(uptoSeq: number): Promise<number>;
  /**
   * Aggregates per interval (`avg|min|max|sum|first|last|count|delta`) of the numeric
   * readings; answered from the coarsest rollup that tiles the interval. Empty intervals
   * are left out.
   */
  queryAggregate(id: string, query: AggregateQuery): Promise<AggregatePoint[]>;
  stats(): StoreStats;
  /** True while writes are refused after a write error (as `stats().readOnly`, without building the stats). */
  readonly readOnly: boolean;
  /** A point-in-time read view, where the store can give one (LevelStore: a LevelDB snapshot). */
  readView?(): Promise<StoreReadView>;
  /**
   * Deletes everything stored of a datapoint but its outbox records (history in flight to
   * upstream): its definition, raw readings and rollups, and what is kept of them in memory
   * (latest value, current buckets). LevelStore deletes in bounded slices (storage/level/datapoint-erase.ts).
   */
  deleteDatapoint?(id: string): Promise<DatapointDeletion>;
  /** How many raw readings of a datapoint are stored (read in bounded batches), and their span. */
  storedPoints?(id: string): Promise<StoredPoints>;
  /** What the store offers beyond this contract (StoreCapabilities); ask with `supports(store, name)`. */
  readonly supports?: StoreSupports;
}

/**
 * Capabilities a store may have beyond the contract, declared by the store in `supports`
 * (abstract-level's manifest style) rather than found out with `instanceof`: callers (the
 * gateway, backup, retention, datapoint deletion) ask `supports(store, name)` and get the
 * store typed with what that capability brings.
 */
export interface StoreCapabilities {
  /** The store keeps its data in a folder (the open checks and disk usage name it). */
  location: { readonly path: string };
  /** Everything stored of a datapoint can be counted and deleted (Store.deleteDatapoint, Store.storedPoints). */
  deleteDatapoint: Required<Pick<Store, 'deleteDatapoint' | 'storedPoints'>>;
  /** The ids of every series with raw points, definitions or not (backup lists series written straight to the store). */
  seriesIds: { seriesIds(): Promise<string[]> };
  /** What a retention pass works with (storage/retention.ts). */
  retention: RetentionTarget;
  /** Broker state (Aedes persistence) kept in the store's own database. */
  brokerState: BrokerStateHost;
}

export type Capability = keyof StoreCapabilities;
export type StoreSupports = { readonly [K in Capability]?: boolean };

/** Whether `store` declares `capability`, typing it with what the capability brings. */
export function supports<K extends Capability>(store: Store, capability: K): store is Store & StoreCapabilities[K] {
  return store.supports?.[capability] === true;
}

/**
 * Retention primitives. Series are named by key prefix: `p!` raw points, `r!<resolution>!`
 * rollups; `p!<id>!`, `r!<resolution>!<id>!` one datapoint's (storage/DESIGN.md "Key layout").
 */
export interface RetentionTarget {
  readonly path: string;
  /** Ids of the datapoints that have series under `prefix` (`p!`, `r!<resolution>!`). */
  idsUnder(prefix: string): Promise<string[]>;
  /** Time of the first entry stored under a series prefix of one datapoint (undefined: none). */
  oldestKeyTime(prefix: string): Promise<number | undefined>;
  /** Deletes a series' entries older than `cutoff` (raw points, or the rollups of `resolution`); returns how many. */
  deleteBefore(id: string, cutoff: number, resolution?: ResolutionName): Promise<number>;
  /** The definition of `id` as stored (parsed JSON, not validated; undefined: none or unreadable). */
  storedDefinition(id: string): Promise<unknown>;
  /** Compacts a key range so deleted data gives its disk space back. */
  compact(start: string, end: string): Promise<void>;
  /** Forgets cached chunks after deletes outside the write path. */
  dropRollupCache(): void;
}

/** The database broker state shares with the store (values read as text there; `b!` keys). */
export type BrokerDb = Level<string, Buffer | string>;

/** A store that keeps broker state in its own database, and goes read-only when writing that fails. */
export interface BrokerStateHost {
  /** The store's database, for broker state under its own `b!` keys (nothing else is touched). */
  brokerDatabase(): BrokerDb;
  /** A write of broker state failed: storage goes read-only as for a failed commit. */
  writeFailed(error: string): void;
}

export const DEFAULT_QUERY_LIMIT = 10_000;
export const MAX_QUERY_LIMIT = 100_000;

/** A reading stored one per key by earlier versions (now a chunk of one): `[v]` or `[v, q]`. */
export function decodeValue(t: number, raw: string): StoredValue {
  // Fast path for `[<number>]`, what nearly every reading is; JSON number text is valid Number() input.
  const c = raw.charCodeAt(1);
  if ((c === 45 || (c >= 48 && c <= 57)) && raw.indexOf(',') === -1) return { t, v: Number(raw.slice(1, -1)) };
  const a = JSON.parse(raw) as [Value, ('stale' | 'bad')?];
  return a.length > 1 ? { t, v: a[0], q: a[1] } : { t, v: a[0] };
}

export function isNewer(candidate: { t: number }, current: { t: number } | undefined): boolean {
  return current === undefined || candidate.t >= current.t;
}
