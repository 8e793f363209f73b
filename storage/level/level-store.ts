import { Level } from 'level';
import { mkdir } from 'node:fs/promises';
import { OutpostError } from '../../core/errors.js';
import '../errors.js';
import type { Datapoint } from '../../core/datapoint.js';
import { StorageAlarm, type StorageRoom } from './storage-alarm.js';
import { isNoRoom, type SpaceReserve } from './space-reserve.js';
import { PREFIX } from './keys.js';
import type { DbValue, Snapshot, StoreDb } from './db.js';
import { Caches } from './caches.js';
import { ChunkedSeries } from './series.js';
import { RollupMaintenance } from './rollup-update.js';
import { RollupWriter } from './rollup-write.js';
import { CommitPipeline } from './commit.js';
import { OutboxLog } from './outbox.js';
import { DatapointDefinitions } from './meta.js';
import { Expiry } from './expiry.js';
import { StartupState, idsUnder, openError } from './open.js';
import { queryAggregate, queryRaw } from './read.js';
import { eraseDatapoint, storedPointsIn, type EraseDb } from './datapoint-erase.js';
import { testHooksOf, type LevelTestHooks } from './test-hooks.js';
import type { AggregatePoint, AggregateQuery, ResolutionName } from '../rollups.js';
import type {
  BrokerDb,
  DatapointDeletion,
  OutboxRecord,
  PointRecord,
  RangeQuery,
  Store,
  StoreReadView,
  StoreStats,
  StoreSupports,
  StoredPoints,
  StoredValue,
  WriteOptions,
} from '../store.js';

export { repairLevelDb } from './open.js';
export type { StoreDb } from './db.js';

/**
 * Points per group commit at most (config `storage.maxBatch`). Under load a commit takes
 * everything waiting up to this; each commit costs per datapoint (its newest chunks and four
 * current buckets rewritten) as well as per point, so larger commits ingest faster:
 * 1,000 datapoints at 8 readings per commit ingest ~1.6× faster than at 5 (bench/README.md).
 * At 10,000 a commit is ~50 ms of CPU on the 2-core reference machine.
 */
const DEFAULT_MAX_BATCH = 10_000;

export interface LevelStoreOptions {
  path: string;
  /** fsync every group commit (default true): acknowledged means durable. */
  sync?: boolean;
  /** Points per group commit at most. */
  maxBatch?: number;
  /** Points waiting for a commit at most; writers beyond wait (bounded memory). */
  maxPending?: number;
  /**
   * Datapoints whose newest chunks stay in memory (default 20,000, sized for a 1 GB gateway:
   * storage/level/caches.ts). Above it nearly every append reads its chunk back. Each costs a
   * few KB (bench/README.md "Central ingest": a central's embedded store at 100,000 datapoints).
   */
  tailCacheDatapoints?: number;
  /** While in the read-only alarm state, recovery (a reopen once there is room: storage/level/storage-alarm.ts) is tried this often (default 5000 ms). */
  probeIntervalMs?: number;
  /** Called when storage enters (error set) or leaves (error undefined) the read-only alarm state. */
  onAlarm?: (error: string | undefined) => void;
  /**
   * Room kept next to the database for opening it on a full disk (storage/level/space-reserve.ts):
   * given up to open, then read-only until there is room for it again. Absent: no reserve.
   */
  reserve?: SpaceReserve;
}

/**
 * The LevelDB store (storage/DESIGN.md): wires parts that do not know each other — the commit
 * pipeline, the caches, the chunked series, rollup maintenance, the outbox, definitions,
 * retention primitives, open and repair — and answers the Store contract and the
 * capabilities it declares in `supports`.
 */
export class LevelStore implements Store {
  readonly supports: StoreSupports = { location: true, deleteDatapoint: true, seriesIds: true, retention: true, brokerState: true };
  private readonly level: StoreDb;
  private readonly sync: boolean;
  private readonly caches: Caches;
  private readonly series: ChunkedSeries;
  private readonly pipeline: CommitPipeline;
  private readonly outbox: OutboxLog;
  private readonly definitions: DatapointDefinitions;
  private readonly expiry: Expiry;
  private readonly startup: StartupState;
  /** The read-only alarm state after a failed write, and its recovery. */
  private readonly alarm: StorageAlarm;
  private closed = true;

  constructor(private readonly options: LevelStoreOptions) {
    this.caches = new Caches(options.tailCacheDatapoints);
    // Chunk values go to LevelDB as bytes: handed over as text they were converted to UTF-8,
    // where every byte from 0x80 (half of a double's) takes two, at ~1/3 of a bulk commit's CPU.
    this.level = new Level<string, DbValue>(options.path, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    this.sync = options.sync ?? true;
    this.alarm = new StorageAlarm({
      path: options.path,
      intervalMs: options.probeIntervalMs ?? 5000,
      reopen: () => this.reopen(),
      onAlarm: options.onAlarm,
      reserve: options.reserve,
    });
    this.series = new ChunkedSeries(this.level, this.caches.current);
    const write = (ops: Parameters<CommitPipeline['write']>[0], sync: boolean): Promise<void> => this.pipeline.write(ops, sync);
    this.outbox = new OutboxLog(this.level, write, this.sync);
    this.pipeline = new CommitPipeline({
      level: this.level,
      caches: this.caches,
      series: this.series,
      maintenance: new RollupMaintenance(this.caches, this.series),
      rollups: new RollupWriter(this.caches, this.series),
      outbox: this.outbox,
      alarm: this.alarm,
      sync: this.sync,
      maxBatch: options.maxBatch ?? DEFAULT_MAX_BATCH,
      maxPending: options.maxPending ?? 100_000,
    });
    this.definitions = new DatapointDefinitions(this.level, write, this.sync);
    this.expiry = new Expiry(this.level, this.series, this.caches, this.pipeline, this.sync);
    this.startup = new StartupState(this.level, this.series, this.caches);
  }

  get path(): string {
    return this.options.path;
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  async open(): Promise<void> {
    await mkdir(this.options.path, { recursive: true });
    let fullAtStart: string | undefined;
    try {
      await this.level.open();
    } catch (err) {
      if (!isNoRoom(err) || !(await this.options.reserve?.release())) throw openError(this.options.path, err);
      // The disk is full: the reserve gives LevelDB the room opening takes, and the store
      // serves what it holds, read-only until there is room for the reserve again.
      fullAtStart = `the disk was full at start (${(err as Error).message}); opened with the space reserve`;
      try {
        await this.level.open();
      } catch (again) {
        throw openError(this.options.path, again);
      }
    }
    this.closed = false;
    await this.outbox.load();
    await this.startup.loadLatest();
    await this.startup.recomputeCurrentBuckets();
    if (fullAtStart !== undefined) this.alarm.raise(fullAtStart);
    else await this.options.reserve?.ensure();
  }

  /**
   * Closes and opens LevelDB again (the way out of the read-only alarm state, see
   * storage/level/storage-alarm.ts), with nothing being written meanwhile, and reloads what is
   * kept in memory from the disk.
   */
  private async reopen(): Promise<void> {
    await this.pipeline.exclusive(async () => {
      if (this.closed) return;
      await this.level.close();
      try {
        await this.level.open();
      } catch (err) {
        throw openError(this.options.path, err);
      }
      this.pipeline.reopened();
      this.dropRollupCache();
      await this.reloadState();
      // The recovery waited for room for it (storage/level/storage-alarm.ts): ready for the next full start.
      await this.options.reserve?.ensure();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.alarm.stop();
    await this.pipeline.writer.flush();
    this.closed = true;
    await this.level.close();
  }

  /**
   * A write to this database outside the store failed (broker state shares it): storage goes
   * read-only as for a failed commit, because the next write would land behind a torn log record.
   */
  writeFailed(error: string): void {
    this.pipeline.writeFailed(error);
  }

  /** The database broker state shares (capability `brokerState`): its `b!` keys are the broker's own. */
  brokerDatabase(): BrokerDb {
    return this.level;
  }

  /** Free and needed bytes measured by the last recovery that waited for space (undefined: none waits). */
  get room(): StorageRoom | undefined {
    return this.alarm.readOnly ? this.alarm.room : undefined;
  }

  async write(points: readonly PointRecord[], options: WriteOptions = {}): Promise<void> {
    if (this.closed) throw new OutpostError('STORAGE_CLOSED');
    if (points.length === 0) return;
    // Same code as a failed write: the broker must not PUBACK, the client resends later.
    this.alarm.check();
    await this.pipeline.add(points, options.outbox !== false);
  }

  async query(id: string, range: RangeQuery = {}, snapshot?: Snapshot): Promise<StoredValue[]> {
    this.assertOpen();
    return queryRaw(this.series, id, range, snapshot);
  }

  async queryAggregate(id: string, query: AggregateQuery): Promise<AggregatePoint[]> {
    this.assertOpen();
    return queryAggregate(this.level, this.series, id, query);
  }

  latest(id: string): StoredValue | undefined {
    return this.caches.latestById.get(id);
  }

  async putDatapoint(dp: Datapoint): Promise<void> {
    await this.putDatapoints([dp]);
  }

  async putDatapoints(dps: readonly Datapoint[]): Promise<void> {
    this.assertOpen();
    await this.definitions.put(dps);
  }

  async listDatapoints(snapshot?: Snapshot): Promise<Datapoint[]> {
    this.assertOpen();
    return this.definitions.list(snapshot);
  }

  /** The definition of `id` as stored, parsed, not validated (capability `retention`). */
  async storedDefinition(id: string): Promise<unknown> {
    return this.definitions.stored(id);
  }

  async readOutbox(afterSeq: number, limit: number): Promise<OutboxRecord[]> {
    this.assertOpen();
    return this.outbox.read(afterSeq, limit);
  }

  async ackOutbox(uptoSeq: number): Promise<number> {
    this.assertOpen();
    return this.outbox.ack(uptoSeq);
  }

  /** Highest outbox sequence acknowledged upstream. */
  get ackedSeq(): number {
    return this.outbox.acked;
  }

  /**
   * Deletes a series' entries older than `cutoff` (raw points, or the rollup buckets of
   * `resolution`) in bounded slices under the commit lock; returns how many (storage/level/expiry.ts).
   */
  async deleteBefore(id: string, cutoff: number, resolution?: ResolutionName): Promise<number> {
    this.assertOpen();
    return this.expiry.deleteBefore(id, cutoff, resolution);
  }

  /** Time of the first entry under a series prefix of one datapoint (capability `retention`). */
  async oldestKeyTime(prefix: string): Promise<number | undefined> {
    return this.expiry.oldestKeyTime(prefix);
  }

  /** Compacts a key range so deleted data gives its disk space back (LevelDB CompactRange). */
  async compact(start: string, end: string): Promise<void> {
    await this.expiry.compact(start, end);
  }

  /** Deletes a datapoint's definition, raw points and rollups, not its outbox records (storage/level/datapoint-erase.ts). */
  async deleteDatapoint(id: string): Promise<DatapointDeletion> {
    this.assertOpen();
    return eraseDatapoint(
      {
        db: this.level as unknown as EraseDb,
        exclusive: (fn) => this.pipeline.exclusive(fn),
        write: (ops, durable) => this.pipeline.write(ops, durable && this.sync),
        // Everything kept in memory per datapoint (runs under the commit lock: nothing prepared is ahead of the disk).
        forget: () => this.caches.forget(id),
      },
      id,
    );
  }

  /** Raw readings stored of `id` and their span (storage/level/datapoint-erase.ts). */
  async storedPoints(id: string): Promise<StoredPoints> {
    this.assertOpen();
    return storedPointsIn(this.level as unknown as EraseDb, id);
  }

  /**
   * A read-only view of the database as it is now (one LevelDB snapshot): what a backup of a
   * running gateway reads, so it is one point-in-time image. Close it when done; it holds
   * back compaction of what changes meanwhile.
   */
  async readView(): Promise<StoreReadView> {
    this.assertOpen();
    const snapshot = this.level.snapshot();
    return {
      query: (id, range) => this.query(id, range, snapshot),
      listDatapoints: () => this.listDatapoints(snapshot),
      ids: () => this.idsUnder(PREFIX.point, snapshot),
      close: () => snapshot.close(),
    };
  }

  /**
   * Forgets cached rollup buckets after deletes outside the write path (retention,
   * restore), so the next write into such a bucket reads it from disk.
   */
  dropRollupCache(): void {
    this.caches.dropTails();
  }

  /** Re-reads marks and latest values after a restore wrote into the database. */
  async reloadState(): Promise<void> {
    this.dropRollupCache();
    await this.outbox.reload();
    // The disk's newest point per id replaces the cached one unless the cache is newer.
    const latestById = this.caches.latestById;
    const cached = new Map(latestById);
    await this.startup.loadLatest();
    for (const [id, v] of cached) {
      const disk = latestById.get(id);
      if (!disk || v.t > disk.t) latestById.set(id, v);
    }
    await this.startup.recomputeCurrentBuckets();
  }

  /** Ids of datapoints that have keys under `prefix` (`p!` or `r!<res>!`), by seeking from one id's range to the next. */
  async idsUnder(prefix: string, snapshot?: Snapshot): Promise<string[]> {
    return idsUnder(this.level, prefix, snapshot);
  }

  /** Ids of every datapoint with raw points (capability `seriesIds`). */
  async seriesIds(): Promise<string[]> {
    return this.idsUnder(PREFIX.point);
  }

  get readOnly(): boolean {
    return this.alarm.readOnly;
  }

  stats(): StoreStats {
    const writer = this.pipeline.writer;
    return {
      pending: writer.pending,
      written: writer.written,
      commits: writer.commits,
      lastSeq: this.outbox.seq,
      ackedSeq: this.outbox.acked,
      outboxDepth: this.outbox.seq - this.outbox.acked,
      readOnly: this.alarm.readOnly,
      ...(this.alarm.error !== undefined ? { error: this.alarm.error } : {}),
      ...(this.room ? { room: { freeBytes: this.room.free, neededBytes: this.room.needed } } : {}),
    };
  }

  /** Test hooks (test/helpers/storage-faults.ts, test/storage/*): raw keys and commit fault injection; not for production code. */
  get testHooks(): LevelTestHooks {
    return testHooksOf(this.level, (fn) => (this.pipeline.onBatch = fn));
  }

  private assertOpen(): void {
    if (this.closed) throw new OutpostError('STORAGE_CLOSED');
  }
}
