import { pino } from 'pino';
import { OutpostError } from '../../core/errors.js';
import '../../storage/errors.js';
import type { Logger } from '../log.js';
import { rateLimitedWarn } from '../log.js';
import type {
  AggregatePoint,
  AggregateQuery,
  CentralDatapoint,
  CentralStore,
  CommandAck,
  CommandBody,
  CommandFilter,
  CommandRef,
  CommandSend,
  EnqueueOptions,
  GatewayCommand,
  GatewayState,
  GatewayStatus,
  IngestRecords,
  InsertResult,
  QueuedCommand,
  RangeQuery,
  Receipt,
  SatelliteMessage,
  SatelliteUsage,
  StoreHealth,
  StoredValue,
} from './contract.js';
import { Catalog } from './postgres/catalog.js';
import {
  commandsAfter,
  enqueueCommand,
  expireCommands,
  findCommand,
  listCommands,
  markCommandSent,
  nextMtCounter,
  recordCommandAck,
} from './postgres/commands.js';
import { Database, redactUrl } from './postgres/db.js';
import { gatewayStates, recordSatellite, recordStatuses, type StatusEntry, satelliteUsage } from './postgres/gateway-state.js';
import { DirtyMemo } from './postgres/dirty-minutes.js';
import { GroupCommit } from './postgres/group-commit.js';
import { checkBatch, type InsertBatch, insertBatches, type WritePathCounts } from './postgres/insert.js';
import { Partitions } from './postgres/partitions.js';
import { countReadings, countSeqs, datapoints, latest, queryRange } from './postgres/query.js';
import { Rollups } from './postgres/rollups.js';
import { type CompactionResult, compactSeqRuns } from './postgres/seq-runs.js';
import { checkGateway, checkRecord } from './level.js';
import { RecordColumns, columnsOf } from './record-columns.js';
import { migrate, type Layout } from './postgres/schema.js';

export { redactUrl };

export interface PostgresCentralStoreOptions {
  /** `postgres://user[:password]@host[:port]/database[?sslmode=…]` (node-postgres reads PGPASSWORD and ~/.pgpass too). */
  url: string;
  /**
   * Connections at most (default 10) for the API, background work and the rarer writes: every
   * central process has its own pool. Ingest has connections of its own besides (one per
   * transaction its group commits run at once, and the probe: `commitConcurrency` + 3).
   */
  poolSize?: number;
  log?: Logger;
  now?: () => number;
  /** How often rollups are refreshed (ms, default 60 s; 0: only by `refreshRollups()`). */
  refreshMs?: number;
  /** While the database refuses writes, how often a write is tried again (ms, default 2 s). */
  probeMs?: number;
  /**
   * Insert transactions in flight at most (default 2); batches that arrive meanwhile are
   * committed together in the next one (postgres/group-commit.ts).
   */
  commitConcurrency?: number;
  /** Records per insert transaction at most (default 10,000). */
  commitMaxRecords?: number;
  /** How long each statement of a write may take (ms, default 60 s); its transaction gets twice that (postgres/db.ts). */
  writeTimeoutMs?: number;
}

const MAINTENANCE_MS = 6 * 3_600_000;
/** Status transactions in flight at most, and statuses per transaction at most (a fleet's reconnect: one per gateway). */
const STATUS_CONCURRENCY = 2;
const STATUS_MAX_GROUP = 1000;

/**
 * Outpost Central's store on PostgreSQL (central/README.md "Storage"): the contract of
 * contract.ts, for fleets. Any number of central processes share one database, each its own
 * receiver: `(gateway, seq)` is a primary key taken with ON CONFLICT DO NOTHING in the
 * transaction that writes the readings, so no process owns anything. The parts:
 * `postgres/schema.ts` (tables, migrations), `partitions.ts` (weekly partitions, ahead and on
 * demand), `insert.ts` (the insert transaction, for any number of batches), `group-commit.ts` (which
 * batches go together), `query.ts` and `gateway-state.ts` (reads),
 * `rollups.ts` (refresh and aggregates), `commands.ts`, `timescale.ts` (the TimescaleDB
 * variant), `db.ts` (pool, transactions, health, redaction of the password).
 */
export class PostgresCentralStore implements CentralStore {
  readonly kind = 'postgres';
  private readonly db: Database;
  private readonly catalog: Catalog;
  private readonly now: () => number;
  private readonly warn: ReturnType<typeof rateLimitedWarn>;
  private parts: { layout: Layout; partitions: Partitions; rollups: Rollups } | undefined;
  private timers: NodeJS.Timeout[] = [];
  private refreshing: Promise<number> | undefined;
  private readonly commits: GroupCommit<InsertBatch, InsertResult>;
  /** Statuses, grouped the same way (gateway-state.ts `recordStatuses`). */
  private readonly statusCommits: GroupCommit<StatusEntry, undefined>;
  private statusCommitCount = 0;
  /** Groups committed by COPY and by merge, and COPYs refused for a stored key (insert.ts). */
  readonly writePaths: WritePathCounts = { copy: 0, merge: 0, copyRefused: 0, mergeRetried: 0 };
  private readonly dirty = new DirtyMemo();

  constructor(private readonly options: PostgresCentralStoreOptions) {
    const log = options.log ?? pino({ level: 'silent' });
    this.db = new Database({
      url: options.url,
      poolSize: options.poolSize ?? 10,
      // A connection for each transaction the two group commits run at once, and one for the probe.
      ingestPoolSize: (options.commitConcurrency ?? 2) + STATUS_CONCURRENCY + 1,
      log,
      probeMs: options.probeMs ?? 2000,
      writeTimeoutMs: options.writeTimeoutMs ?? 60_000,
    });
    this.catalog = new Catalog(this.db);
    this.now = options.now ?? Date.now;
    this.warn = rateLimitedWarn(log);
    this.commits = new GroupCommit(
      (batches) =>
        insertBatches({ db: this.db, catalog: this.catalog, partitions: this.opened().partitions, paths: this.writePaths, dirty: this.dirty }, batches),
      {
        concurrency: options.commitConcurrency ?? 2,
        maxRecords: options.commitMaxRecords ?? 10_000,
      },
    );
    this.statusCommits = new GroupCommit(
      async (entries) => {
        await recordStatuses(this.db, this.catalog, entries);
        this.statusCommitCount++;
        return entries.map(() => undefined);
      },
      { concurrency: STATUS_CONCURRENCY, maxRecords: STATUS_MAX_GROUP },
    );
  }

  /** The URL without its password, for logs. */
  get where(): string {
    return redactUrl(this.options.url);
  }

  /** Transactions that committed statuses (tests, diagnosis). */
  get statusTransactions(): number {
    return this.statusCommitCount;
  }

  /** Datapoints whose series this process knows without a query (tests, diagnosis). */
  get knownDatapoints(): number {
    return this.catalog.knownDatapoints;
  }

  /** `partitioned` (plain PostgreSQL) or `hypertable` (TimescaleDB), as recorded when the schema was made. */
  get layout(): Layout | undefined {
    return this.parts?.layout;
  }

  async open(): Promise<void> {
    let layout: Layout;
    let partitions: Partitions;
    try {
      layout = await migrate(this.db);
      this.db.ready = true;
      partitions = new Partitions(this.db, layout);
      await partitions.load();
      await partitions.ahead(this.now());
      await this.catalog.load();
    } catch (err) {
      await this.db.close();
      if (err instanceof OutpostError) throw err;
      throw new OutpostError('STORAGE_OPEN_FAILED', `PostgreSQL at ${this.where}: ${this.db.message(err)}`, { cause: err });
    }
    this.parts = { layout, partitions, rollups: new Rollups(this.db, partitions) };
    this.db.log.info({ database: this.where, layout }, 'PostgreSQL store open');
    const refreshMs = this.options.refreshMs ?? 60_000;
    if (refreshMs > 0) this.every(refreshMs, () => this.refreshRollups());
    this.every(MAINTENANCE_MS, () => partitions.ahead(this.now()));
    this.every(MAINTENANCE_MS, () => this.compactSeqRuns());
  }

  private every(ms: number, fn: () => Promise<unknown>): void {
    const timer = setInterval(() => {
      if (this.db.health().state !== 'ok') return;
      Promise.resolve()
        .then(fn)
        .catch((err: unknown) => this.warn(`background:${ms}`, { err: this.db.message(err) }, 'PostgreSQL store: background work failed'));
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.refreshing?.catch(() => undefined);
    await this.db.close();
  }

  health(): StoreHealth {
    return this.db.health();
  }

  /** Works off the dirty rollup buckets now (scheduled every `refreshMs`); the entries done. One run at a time per store. */
  async refreshRollups(): Promise<number> {
    const { rollups } = this.opened();
    this.refreshing ??= rollups.refresh().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  /** Joins each gateway's adjacent seq runs (seq-runs.ts; every 6 h, and for tests). */
  async compactSeqRuns(): Promise<CompactionResult> {
    this.opened();
    const result = await compactSeqRuns(this.db);
    if (result.runsBefore > 0) this.db.log.info(result, 'PostgreSQL: seq runs joined');
    return result;
  }

  private opened(): NonNullable<PostgresCentralStore['parts']> {
    if (!this.parts || this.db.isClosed) throw new OutpostError('STORAGE_CLOSED', 'the PostgreSQL store is not open');
    return this.parts;
  }

  async insertReadings(gateway: string, records: IngestRecords, receipt: Receipt): Promise<InsertResult> {
    this.opened();
    // Objects are checked as they are, before packing could turn a field of the wrong type into a number.
    if (!(records instanceof RecordColumns)) for (const r of records) checkRecord(r);
    const batch = { gateway, records: columnsOf(records), receipt };
    checkBatch(batch);
    return this.commits.submit(batch, records.length);
  }

  async recordStatus(gateway: string, status: GatewayStatus): Promise<void> {
    this.opened();
    // Checked before it waits for a transaction: a bad one is refused alone.
    checkGateway(gateway);
    await this.statusCommits.submit({ gateway, status }, 1);
  }

  async recordSatellite(gateway: string, message: SatelliteMessage): Promise<void> {
    this.opened();
    return recordSatellite(this.db, this.catalog, gateway, message);
  }

  async gatewayStates(): Promise<GatewayState[]> {
    this.opened();
    return gatewayStates(this.db);
  }

  async gatewayState(gateway: string): Promise<GatewayState | undefined> {
    this.opened();
    return (await gatewayStates(this.db, gateway))[0];
  }

  async satelliteUsage(gateway: string, from: number, to: number): Promise<SatelliteUsage> {
    this.opened();
    return satelliteUsage(this.db, gateway, from, to);
  }

  async datapoints(gateway?: string): Promise<CentralDatapoint[]> {
    this.opened();
    return datapoints(this.db, gateway);
  }

  async latest(gateway: string, id: string): Promise<StoredValue | undefined> {
    this.opened();
    return latest(this.db, gateway, id);
  }

  async query(gateway: string, id: string, range?: RangeQuery): Promise<StoredValue[]> {
    this.opened();
    return queryRange(this.db, this.catalog, gateway, id, range);
  }

  async queryAggregate(gateway: string, id: string, query: AggregateQuery): Promise<AggregatePoint[]> {
    const { rollups } = this.opened();
    const series = await this.db.read(() => this.catalog.lookup(gateway, id));
    if (series === undefined) return [];
    return rollups.aggregate(series, query);
  }

  async countReadings(gateway: string, id?: string): Promise<number> {
    this.opened();
    return countReadings(this.db, gateway, id);
  }

  async countSeqs(gateway: string): Promise<number> {
    this.opened();
    return countSeqs(this.db, gateway);
  }

  async enqueueCommand(gateway: string, command: CommandBody, options?: EnqueueOptions): Promise<QueuedCommand> {
    this.opened();
    return enqueueCommand(this.db, this.catalog, gateway, command, options, this.now());
  }

  async commandsAfter(gateway: string, after: number, limit: number): Promise<QueuedCommand[]> {
    this.opened();
    return commandsAfter(this.db, gateway, after, limit);
  }

  async recordCommandAck(gateway: string, cursor: number, ack: CommandAck): Promise<QueuedCommand | undefined> {
    this.opened();
    return recordCommandAck(this.db, gateway, cursor, ack);
  }

  async command(gateway: string, ref: CommandRef): Promise<QueuedCommand | undefined> {
    this.opened();
    return findCommand(this.db, gateway, ref);
  }

  async listCommands(filter: CommandFilter): Promise<GatewayCommand[]> {
    this.opened();
    return listCommands(this.db, filter);
  }

  async markCommandSent(gateway: string, cursor: number, send: CommandSend): Promise<QueuedCommand | undefined> {
    this.opened();
    return markCommandSent(this.db, gateway, cursor, send);
  }

  async expireCommands(now: number): Promise<QueuedCommand[]> {
    this.opened();
    return expireCommands(this.db, now);
  }

  async nextMtCounter(gateway: string, floor: number): Promise<number> {
    this.opened();
    return nextMtCounter(this.db, gateway, floor, this.now());
  }
}
