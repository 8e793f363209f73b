import type { Caches } from './caches.js';
import type { ChunkedSeries } from './series.js';
import type { RollupMaintenance } from './rollup-update.js';
import type { RollupWriter } from './rollup-write.js';
import type { OutboxLog } from './outbox.js';
import type { StorageAlarm } from './storage-alarm.js';
import { GroupCommit } from './group-commit.js';
import { OutboxEncoder } from './outbox-codec.js';
import { LIVE_MAX, RAW_BLOCK_MS, extendInPlace, rawCodec } from './chunks.js';
import { outboxKey, SEQ_KEY } from './keys.js';
import { OpList, READ_PARALLEL, inParallel, type BatchOp, type Sink, type StoreDb } from './db.js';
import { NEEDS_READ, sameReading, type Unchanged } from './spaces.js';
import { storedCopy } from './entries.js';
import { READ_SLICE_POINTS, changedOnly, seriesOf, slices, type Building, type Series, type TailUpdate } from './batch.js';
import type { CurrentUpdate } from './current-buckets.js';
import { OutpostError } from '../../core/errors.js';
import '../errors.js';
import { isNewer, type PointRecord, type StoredValue } from '../store.js';

/**
 * Points that must wait before a commit is prepared behind one being written (GroupCommit
 * minPipelined); with fewer, it waits for that write. Live MQTT QoS 1 traffic, four publishers
 * with 64 in flight over 100 datapoints, made commits of ~95 readings, about one per datapoint.
 */
const PIPELINED_MIN = 256;

/** Points written with `{ outbox: false }` (restore): stored and rolled up, not queued for sync. */
const NO_OUTBOX = new WeakSet<PointRecord>();

/** The error of a commit prepared from one that failed: dropped, never written (its writers write again). */
function notWritten(): OutpostError {
  return new OutpostError('STORAGE_WRITE_FAILED', 'not written: the commit before it failed (storage is read-only until it recovers)');
}

/** What the commit pipeline works with; the store wires them (storage/level/level-store.ts). */
export interface CommitParts {
  level: StoreDb;
  caches: Caches;
  series: ChunkedSeries;
  maintenance: RollupMaintenance;
  rollups: RollupWriter;
  outbox: OutboxLog;
  alarm: StorageAlarm;
  /** fsync every commit. */
  sync: boolean;
  maxBatch: number;
  maxPending: number;
}

/**
 * The commit pipeline (storage/DESIGN.md "Group commit", "Commits are pipelined"): many writers
 * share one atomic, fsynced batch holding raw chunks, rollups and the commit's outbox record;
 * the next commit is prepared while one is written; a failed write voids what was prepared
 * from it and raises the read-only alarm. Also the commit lock every other write of the
 * store's own takes (`exclusive`), and those writes (`write`).
 */
export class CommitPipeline {
  readonly writer: GroupCommit<PointRecord>;
  /** The write of the newest prepared commit while in flight: the next commit's write waits for it. */
  private writing: Promise<void> | undefined;
  /** Failed commits so far: a commit prepared while one failed is void. */
  private failures = 0;
  /** Builds each commit's outbox value (one commit at a time). */
  private readonly encoder = new OutboxEncoder();
  /**
   * A write to the database failed since it was opened: LevelDB's log may end in a torn record,
   * and whatever is written behind it is lost at the next open (storage/level/storage-alarm.ts).
   * Nothing is written, not even commits queued before the failure, until it is reopened.
   */
  private torn = false;
  private lock: Promise<void> = Promise.resolve();
  /** Test hook (LevelStore.testHooks.onCommitBatch): sees each commit's chained batch as it is made. */
  onBatch: ((batch: ReturnType<StoreDb['batch']>) => void) | undefined;

  constructor(private readonly p: CommitParts) {
    this.writer = new GroupCommit<PointRecord>({
      commit: (items) => this.serially(() => this.commit(items)),
      maxBatch: p.maxBatch,
      maxPending: p.maxPending,
      minPipelined: PIPELINED_MIN,
    });
  }

  /** Queues points for the next commits; resolves once they are durable. */
  add(points: readonly PointRecord[], outbox: boolean): Promise<void> {
    if (!outbox) for (const pt of points) NO_OUTBOX.add(pt);
    return this.writer.add(points);
  }

  /** The database was reopened: writes go on from a log without a torn record. */
  reopened(): void {
    this.torn = false;
  }

  /**
   * A write to this database outside a commit failed (the store's own, or broker state, which
   * shares it): storage goes read-only as for a failed commit, because the next write would land
   * behind a torn log record.
   */
  writeFailed(error: string): void {
    this.torn = true;
    this.p.alarm.raise(error);
  }

  /** A write of the store's own outside a commit: refused while read-only, and a failure raises the alarm. */
  async write(ops: BatchOp[], sync: boolean): Promise<void> {
    this.p.alarm.check();
    try {
      await this.p.level.batch(ops, { sync });
    } catch (err) {
      this.writeFailed((err as Error).message);
      throw new OutpostError('STORAGE_WRITE_FAILED', `LevelDB batch failed: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Prepares one commit (everything but the disk write) and starts its write; resolves with
   * `durable`, which settles once the commit is on disk. Commits are pipelined (GroupCommit):
   * the next one is prepared while this one is written, from the state this one leaves —
   * the cached newest chunks and buckets, the newest readings (pendingLatest) and outbox
   * sequence numbers (preparedSeq) — so it must never reach the disk if this one does not:
   * writes are chained, and a failure fails every commit prepared after it (their writers
   * are refused, as with any failed write, and write again) and drops all that state.
   * Readings become visible to readers (latest, queries) once durable.
   */
  private async commit(points: PointRecord[]): Promise<{ durable: Promise<void> }> {
    // Queued before a write failed: behind a torn log record it would be lost at the next open.
    if (this.torn) this.p.alarm.check();
    const failures = this.failures;
    // The write before this one, if still in flight: reads from disk wait for it (prepared
    // state is ahead of the disk until then), and so does this write.
    const before = this.writing;
    this.p.series.diskBehind = before;
    // Operations go straight into LevelDB's chained batch (no intermediate op objects for the outbox).
    const batch = this.p.level.batch();
    this.onBatch?.(batch);
    const firstSeq = this.p.outbox.preparedSeq + 1;
    // The whole commit is one outbox record `o!<first seq>` holding its points in order
    // (seq = first + index): one put per commit instead of one per point (storage/level/outbox-codec.ts).
    const outbox = this.encoder;
    outbox.reset();
    // The batch's points per datapoint in arrival order; seriesOf sorts (last one wins).
    const byId = new Map<string, Building>();
    for (let i = 0; i < points.length; i++) {
      const p = points[i]!;
      let b = byId.get(p.id);
      if (!b) byId.set(p.id, (b = { outboxId: -1, ts: [], vals: [], ascending: true }));
      else if (p.t <= b.ts[b.ts.length - 1]!) b.ascending = false;
      b.ts.push(p.t);
      // The caller's point itself, read during this commit only; what outlives it (the newest
      // chunks and readings cached) is copied (ownChunks, storedCopy).
      b.vals.push(p);
      if (!NO_OUTBOX.has(p)) {
        if (b.outboxId < 0) b.outboxId = outbox.addId(p.id);
        outbox.add(b.outboxId, p.t, p.v, p.q);
      }
    }
    const seq = this.p.outbox.preparedSeq + outbox.count;
    const series = seriesOf(byId);
    const tails: TailUpdate[] = [];
    this.p.series.commitReads = new Map();
    const currentUpdates: CurrentUpdate[] = (this.p.caches.commitCurrent = []);
    this.p.caches.commitMarks = [];
    try {
      if (outbox.count > 0) {
        batch.put(outboxKey(firstSeq), outbox.encode());
        batch.put(SEQ_KEY, String(seq));
      }
      const rawReads = new Set(this.writeRaw(series, batch, tails));
      const general = series.filter((s) => !this.p.rollups.appendRollups(s, batch, tails));
      // Series that read chunks from disk (late values, overwrites), a slice of at most
      // READ_SLICE_POINTS readings at a time: what a slice reads and computes (chunks, runs,
      // changes) is dropped before the next one, so a re-imported file costs memory by the
      // slice, not by everything the commit overwrites. Series are independent (their keys
      // differ), and every operation still goes into this commit's one atomic batch.
      // (A raw read means a late reading, so such a series is a general one too; both kept for safety.)
      const generalSet = new Set(general);
      const reading = series.filter((s) => generalSet.has(s) || rawReads.has(s));
      for (const slice of slices(reading, READ_SLICE_POINTS)) {
        await this.writeRawRead(
          slice.filter((s) => rawReads.has(s)),
          batch,
          tails,
        );
        // Points stored as they already are (the same file imported again) change no bucket.
        const rollups: Series[] = [];
        for (const s of slice) {
          if (!generalSet.has(s)) continue;
          const changed = changedOnly(s);
          if (changed) rollups.push(changed);
        }
        await this.p.maintenance.rollupUpdates(rollups);
        await this.p.rollups.writeRollups(rollups, batch, tails);
        this.p.series.commitReads!.clear();
        for (const s of slice) {
          s.runs = [];
          s.changes = [];
        }
      }
      // A write before this one failed meanwhile: this one was prepared from its state.
      if (this.failures !== failures) throw notWritten();
    } catch (err) {
      // A batch that never reached write() holds native memory until closed.
      await batch.close();
      throw this.failures !== failures ? notWritten() : this.failedPreparation(err);
    } finally {
      this.p.series.commitReads = undefined;
      this.p.caches.commitCurrent = undefined;
      this.p.series.diskBehind = undefined;
    }
    // The state the next commit is prepared from.
    this.p.outbox.preparedSeq = seq;
    this.p.caches.applyMarks();
    const newest: StoredValue[] = new Array(series.length);
    for (let i = 0; i < series.length; i++) {
      const s = series[i]!;
      const value = s.vals[s.vals.length - 1]!;
      newest[i] = storedCopy(value);
      if (value.t >= this.p.caches.newestRawTime(s.id)) this.p.caches.pendingLatest.set(s.id, newest[i]!);
    }
    this.p.caches.keepTails(tails);
    const durable = (async () => {
      // Only a failed write since this commit was prepared voids it: a commit before it that
      // was itself voided (prepared from a failed one) left nothing this one was prepared from.
      if (before) await before.catch(() => undefined);
      if (this.failures !== failures) {
        await batch.close();
        throw notWritten();
      }
      try {
        // write() closes the batch itself, also when it fails.
        await batch.write({ sync: this.p.sync });
      } catch (err) {
        throw this.failed(err);
      }
      this.p.outbox.seq = Math.max(this.p.outbox.seq, seq);
      this.p.caches.current.apply(currentUpdates);
      for (let i = 0; i < series.length; i++) {
        const id = series[i]!.id;
        const value = newest[i]!;
        if (isNewer(value, this.p.caches.latestById.get(id))) this.p.caches.latestById.set(id, value);
        if (this.p.caches.pendingLatest.get(id) === value) this.p.caches.pendingLatest.delete(id);
      }
    })();
    this.writing = durable;
    // Observed by the next commit and by GroupCommit; this only keeps it from counting as unhandled meanwhile.
    durable.then(
      () => {
        if (this.writing === durable) this.writing = undefined;
      },
      () => {
        if (this.writing === durable) this.writing = undefined;
      },
    );
    return { durable };
  }

  /**
   * A commit's write failed: every commit prepared from it is void. Drops the cached newest
   * chunks and buckets (they may be ahead of the disk), forgets readings and sequence numbers
   * not on disk, enters the read-only alarm state. Returns the error for the commit's writers.
   */
  private failed(err: unknown): OutpostError {
    this.failures++;
    this.torn = true;
    this.p.caches.pendingLatest.clear();
    // What prepared commits left unwritten never reached the disk: `current` says what did.
    this.p.caches.unwritten.clear();
    this.p.outbox.preparedSeq = this.p.outbox.seq;
    return this.failedPreparation(err);
  }

  /**
   * A commit failed while it was prepared (a read, an encoding): it took no sequence numbers
   * or readings yet, and the commit before it (maybe still being written) stays valid; only
   * the caches, which it may have changed in place, are dropped. Read-only alarm state.
   */
  private failedPreparation(err: unknown): OutpostError {
    this.p.caches.dropTails();
    const message = (err as Error).message;
    this.p.alarm.raise(message);
    return new OutpostError('STORAGE_WRITE_FAILED', `LevelDB batch failed: ${message}`, { cause: err });
  }

  /**
   * Raw points of the batch into their datapoints' chunks, where that needs no read (appends,
   * the cached newest chunks). Returns the series that need one (writeRawRead).
   */
  private writeRaw(series: Series[], sink: Sink, tails: TailUpdate[]): Series[] {
    const later: Series[] = [];
    for (const s of series) {
      const newest = this.p.caches.newestRawTime(s.id);
      const cached = this.p.caches.rawTail.get(s.id);
      if (cached && s.ts[0]! > newest && extendInPlace(cached, s.ts, s.vals, RAW_BLOCK_MS, LIVE_MAX, storedCopy)) {
        const last = cached[cached.length - 1]!;
        sink.put(last.key, rawCodec.encode(last.ts, last.es));
        continue;
      }
      const tail = this.p.series.writeSeriesInMemory(this.p.series.rawSpace(s.id), cached, newest, s.ts, s.vals, sink);
      if (tail === NEEDS_READ) later.push(s);
      else tails.push({ id: s.id, chunks: tail });
    }
    return later;
  }

  /** Raw points of series whose chunks must be read first (late values, overwrites). */
  private async writeRawRead(later: Series[], sink: Sink, tails: TailUpdate[]): Promise<void> {
    const results = await inParallel(later, READ_PARALLEL, async (s) => {
      const own = new OpList();
      const newest = this.p.caches.newestRawTime(s.id);
      const same: Unchanged<StoredValue> = { flags: new Uint8Array(s.ts.length), count: 0, equal: sameReading };
      const tail = await this.p.series.writeSeries(this.p.series.rawSpace(s.id), this.p.caches.rawTail.get(s.id), newest, s.ts, s.vals, own, same);
      if (same.count > 0) s.unchanged = same.flags;
      return { own, tail };
    });
    for (let i = 0; i < later.length; i++) {
      results[i]!.own.replay(sink);
      tails.push({ id: later[i]!.id, chunks: results[i]!.tail });
    }
  }

  /** Runs `fn` alone: no commit is prepared or written meanwhile (retention deletes). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.serially(async () => {
      // A commit's write may still be in flight after its preparation ended.
      await this.writing?.catch(() => undefined);
      return fn();
    });
  }

  /** Runs `fn` after everything queued before it: commits are prepared one at a time. */
  serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn);
    this.lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }
}
