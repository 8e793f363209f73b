import type { Logger } from '../log.js';
import type { Clock } from '../../core/clock.js';
import { OutpostError, isOutpostError, toOutpostError } from '../../core/errors.js';
import './errors.js';
import type { OutboxRecord, Store } from '../../storage/store.js';
import type { DurableCursor } from './cursor.js';
import { batchKey, priorityKey, type Batch, type Link } from './link.js';
import { backoffDelay, type ByteBucket } from './pacing.js';
import { selectPriority } from './priority.js';
import { AckWindow } from './ack-window.js';
import { isRecordRefusal, type RefusalIsolator } from './isolate.js';

/** A link as the scheduler drives it: with its window and bandwidth cap. */
export interface Lane {
  link: Link;
  window: number;
  batchRecords: number;
  bucket: ByteBucket;
}

export interface DrainOptions {
  store: Store;
  cursor: DurableCursor;
  gatewayId: string;
  clock: Clock;
  log: Logger;
  pollMs: number;
  /** Acknowledged records are deleted from the outbox at most this often (and when idle or stopping). */
  releaseIntervalMs: number;
  backoff: { initialMs: number; maxMs: number };
  live: { enabled: boolean; thresholdRecords: number; intervalMs: number; scanRecords: number };
  isAlarm: (id: string) => boolean;
  /** The primary link to use now, or undefined while none can carry data. */
  pickLane(): Lane | undefined;
  onSent?(lane: Lane, batch: Batch, bytes: number): void;
  onError?(lane: Lane, err: OutpostError): void;
  /**
   * Sets refused records aside (dead-letter store) so one poison record does not block
   * the outbox; without it a permanently refused batch is retried like any failure.
   */
  isolator?: RefusalIsolator;
  /** The receiver of the lane refuses records for good (`reason`), or no longer does (`undefined`). */
  onBlocked?(lane: Lane, reason: string | undefined): void;
  random?: () => number;
}

/** Unacknowledged batch ranges remembered, at most (a window is at most 256 batches). */
const MAX_CUTS = 1024;

/**
 * Drains the outbox through the primary link: reads after the cursor in batches,
 * keeps up to `window` batches unacknowledged, and advances the cursor only over a
 * contiguous prefix of acknowledged batches (so it always means "everything up to
 * here is upstream"). On any failure it rewinds to the cursor and resends after a
 * jittered backoff: at-least-once, the receiver drops duplicates by sequence.
 *
 * Catch-up does not starve live data: while the backlog is deep, a priority batch
 * (alarms and latest values from the tail) goes out on the live lane every interval.
 */
export class DrainScheduler {
  private attempt = 0;
  private wakeUp: (() => void) | undefined;
  private persistedAck = 0;
  /** Highest sequence deleted from the outbox via ackOutbox. */
  private released = 0;
  private lastRelease = 0;
  private ackTarget = 0;
  private acking: Promise<void> | undefined;
  private liveBusy = false;
  private liveTimer: NodeJS.Timeout | undefined;
  /** Read position of the drain (>= cursor): the live lane looks beyond it. */
  private position = 0;
  private running: Promise<void> | undefined;
  private readonly abort = new AbortController();
  /** Payload bytes per record seen lately, to book the bandwidth cap before sending. */
  private bytesPerRecord = 50;
  /**
   * `first → last` of history batches sent and not acknowledged yet: a resend after a
   * failure covers the same range, so it carries the same idempotency key even when more
   * records arrived meanwhile (seen: the key changed on 12 of 26 retries).
   */
  private readonly cuts = new Map<number, number>();
  /** Lanes whose receiver refuses records for good, with the reason shown as the link's state. */
  private readonly blocked = new Map<Lane, string>();
  readonly ackOutbox: ((uptoSeq: number) => Promise<number>) | undefined;

  constructor(private readonly o: DrainOptions) {
    // Storage may not have ackOutbox yet (older store): then only the cursor moves.
    const store = o.store as Partial<Pick<Store, 'ackOutbox'>>;
    this.ackOutbox = typeof store.ackOutbox === 'function' ? store.ackOutbox.bind(o.store) : undefined;
    this.persistedAck = this.ackTarget = this.released = o.cursor.value;
  }

  start(): void {
    if (this.o.live.enabled && !this.liveTimer) {
      this.liveTimer = setInterval(() => void this.sendLive(), this.o.live.intervalMs);
      this.liveTimer.unref();
    }
    this.running ??= this.loop().catch((err) => this.o.log.error({ err }, 'sync drain stopped on an unexpected error'));
  }

  async stop(): Promise<void> {
    clearInterval(this.liveTimer);
    this.abort.abort(new OutpostError('SYNC_LINK_DOWN', 'sync stopping'));
    this.wake();
    await this.running;
    await this.flushAcks();
  }

  /** Something changed (new data, link up): look again now instead of at the next poll. */
  wake(): void {
    const w = this.wakeUp;
    this.wakeUp = undefined;
    w?.();
  }

  /** Highest sequence acknowledged upstream (in memory; persisted shortly after). */
  get acked(): number {
    return this.o.cursor.value;
  }

  private async loop(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      const lane = this.o.pickLane();
      if (!lane) {
        this.releaseIfDue();
        await this.idle(this.o.pollMs);
        continue;
      }
      try {
        await this.drain(lane, signal);
        this.attempt = 0;
        if (this.o.store.stats().lastSeq <= this.o.cursor.value) {
          this.releaseIfDue();
          await this.idle(this.o.pollMs);
        }
      } catch (err) {
        if (signal.aborted) break;
        const e = toOutpostError(err);
        this.o.onError?.(lane, e);
        const retryAfter = (e.details as { retryAfterMs?: number } | undefined)?.retryAfterMs ?? 0;
        const delay = Math.max(retryAfter, backoffDelay(this.attempt++, this.o.backoff.initialMs, this.o.backoff.maxMs, this.o.random));
        this.o.log.debug({ link: lane.link.name, code: e.code, reason: e.message, delay }, 'sync batch failed; resending from the cursor after backoff');
        await this.idle(delay, true);
      }
    }
  }

  /** Sends until caught up, the lane changes, or a batch fails (throws). */
  private async drain(lane: Lane, signal: AbortSignal): Promise<void> {
    let next = this.o.cursor.value;
    // Live first: with a deep backlog (a link just came back), the latest values and alarms
    // go out before the first history batch, then every interval while history catches up.
    this.position = next;
    if (this.o.live.enabled) await this.sendLive();
    // Aborted on stop and on the first failed batch, so a pacing sleep does not go on
    // sending into a window that will be resent anyway.
    const round = new AbortController();
    const stop = (): void => round.abort();
    signal.addEventListener('abort', stop, { once: true });
    const window = new AckWindow((batch, bytes) => this.acknowledged(lane, batch, bytes), stop);
    try {
      for (;;) {
        if (signal.aborted) return;
        if (window.failure) return await this.failed(lane, window, signal);
        if (this.o.pickLane() === lane && window.size < lane.window) {
          this.position = next;
          if (!(await lane.bucket.waitReady(round.signal))) continue;
          const batch = await this.nextBatch(lane, next);
          if (batch) {
            next = batch.last;
            window.add(batch, this.send(lane, batch));
            continue;
          }
        }
        if (window.size === 0) return;
        await window.changed();
      }
    } finally {
      signal.removeEventListener('abort', stop);
    }
  }

  /**
   * The history batch after `after`: the same range as an unacknowledged one that began
   * there, else up to `batchRecords`, ending on a multiple of it (so that after a restart
   * the same records are cut the same way again as long as the batch is full).
   */
  private async nextBatch(lane: Lane, after: number): Promise<Batch | undefined> {
    const size = Math.min(lane.batchRecords, lane.link.maxBatchRecords);
    // A range cut for another lane with bigger batches (the primary changed) is cut afresh.
    const remembered = this.cuts.get(after + 1);
    const end = remembered !== undefined && remembered - after <= size ? remembered : (Math.floor(after / size) + 1) * size;
    const read = await this.o.store.readOutbox(after, end - after);
    if (read.length === 0) return undefined;
    // Gaps in the sequence (none are expected) could leave nothing inside the range: then take what was read.
    const inRange = read.filter((r) => r.seq <= end);
    const records = inRange.length > 0 ? inRange : read;
    const first = records[0]!.seq;
    const last = records[records.length - 1]!.seq;
    this.cuts.set(first, last);
    if (this.cuts.size > MAX_CUTS) this.cuts.delete(this.cuts.keys().next().value!);
    return { key: batchKey(this.o.gatewayId, first, last), gatewayId: this.o.gatewayId, first, last, records, lane: 'history' };
  }

  /** Sends one batch under the bandwidth cap; resolves with the payload bytes once acknowledged. */
  private send(lane: Lane, batch: Batch): Promise<number> {
    const estimate = batch.records.length * this.bytesPerRecord;
    lane.bucket.charge(estimate);
    return lane.link.send(batch).then((bytes) => {
      lane.bucket.charge(bytes - estimate);
      this.bytesPerRecord = Math.max(1, bytes / batch.records.length);
      return bytes;
    });
  }

  /** An acknowledged batch of the contiguous prefix: count it, move the cursor. */
  private acknowledged(lane: Lane, batch: Batch, bytes: number): void {
    this.o.onSent?.(lane, batch, bytes);
    this.o.isolator?.accepted(lane.link.name);
    this.setBlocked(lane, undefined);
    this.markAcked(batch.last);
  }

  /**
   * A batch of the window failed. A permanent refusal of the first unacknowledged batch
   * is isolated record by record (`isolate.ts`); anything else is thrown: the loop backs
   * off and resends from the cursor.
   */
  private async failed(lane: Lane, window: AckWindow, signal: AbortSignal): Promise<void> {
    const first = window.failure!;
    const isolator = this.o.isolator;
    if (!isolator || !isRecordRefusal(first.err) || first.batch.lane !== 'history') throw first.err;
    // Batches sent before it may still be acknowledged: then it is the first one unacknowledged.
    const head = await window.settleBeforeFailure();
    if (!head) throw first.err;
    if (!isRecordRefusal(head.err) || !head.atHead || this.o.cursor.value >= head.batch.first || signal.aborted) throw head.err;
    this.o.onError?.(lane, head.err);
    this.setBlocked(lane, head.err.message);
    this.o.log.warn(
      { link: lane.link.name, first: head.batch.first, last: head.batch.last, reason: head.err.message },
      'the receiver refuses a batch for good; splitting it to find the refused records',
    );
    // Not isolated this time (the receiver refuses everything, or accepted nothing yet): the
    // next try reads afresh, so records that came meanwhile can join the batch and show
    // whether the receiver takes anything at all.
    const retryWithNewRecords = (err: unknown): never => {
      if (isOutpostError(err, 'SYNC_BLOCKED')) this.cuts.delete(head.batch.first);
      throw err;
    };
    await isolator
      .isolate({
        link: lane.link.name,
        batch: head.batch,
        refusal: head.err,
        send: async (records) => {
          if (!(await lane.bucket.waitReady(signal))) throw new OutpostError('SYNC_LINK_DOWN', 'sync stopping');
          const part: Batch = {
            key: batchKey(this.o.gatewayId, records[0]!.seq, records[records.length - 1]!.seq),
            gatewayId: this.o.gatewayId,
            first: records[0]!.seq,
            last: records[records.length - 1]!.seq,
            records,
            lane: 'history',
          };
          const bytes = await this.send(lane, part);
          this.o.onSent?.(lane, part, bytes);
        },
        advance: (seq) => this.markAcked(seq),
      })
      .catch(retryWithNewRecords);
    this.setBlocked(lane, undefined);
  }

  private setBlocked(lane: Lane, reason: string | undefined): void {
    if (reason === undefined ? !this.blocked.has(lane) : this.blocked.get(lane) === reason) return;
    if (reason === undefined) this.blocked.delete(lane);
    else this.blocked.set(lane, reason);
    this.o.onBlocked?.(lane, reason);
  }

  /**
   * The live lane, on its own timer so the tail scan never slows the history drain:
   * alarms and latest values go out first while history is still far behind.
   */
  private async sendLive(): Promise<void> {
    const live = this.o.live;
    const lane = this.o.pickLane();
    if (!lane || this.liveBusy) return;
    const lastSeq = this.o.store.stats().lastSeq;
    const from = Math.max(this.position, this.o.cursor.value);
    if (lastSeq - from < live.thresholdRecords) return;
    this.liveBusy = true;
    try {
      const batch = await this.priorityBatch(lane.link.maxBatchRecords, undefined, Math.max(from, lastSeq - live.scanRecords), live.scanRecords);
      if (!batch) return;
      // Not counted for the cursor: the same records come again, in order, with the history.
      const bytes = await lane.link.send(batch);
      lane.bucket.charge(bytes);
    } catch (err) {
      this.o.log.debug({ link: lane.link.name, err: (err as Error).message }, 'live batch not sent');
    } finally {
      this.liveBusy = false;
    }
  }

  /** Alarms and latest values among `scan` records after `after`, minus what `skip` says was sent. */
  async priorityBatch(
    maxRecords: number,
    skip: ((r: OutboxRecord, alarm: boolean) => boolean) | undefined,
    after: number,
    scan: number,
    fit?: (ordered: readonly OutboxRecord[], isAlarm: (r: OutboxRecord) => boolean) => OutboxRecord[],
  ): Promise<Batch | undefined> {
    const tail: OutboxRecord[] = await this.o.store.readOutbox(after, scan);
    const picked = selectPriority(tail, this.o.isAlarm, maxRecords, skip, fit);
    if (picked.length === 0) return undefined;
    const first = picked[0]!.seq;
    const last = picked[picked.length - 1]!.seq;
    return { key: priorityKey(this.o.gatewayId, picked), gatewayId: this.o.gatewayId, first, last, records: picked, lane: 'priority' };
  }

  /**
   * Moves the cursor in memory now and persists it (cursor file, then the store's
   * outbox delete) in the background, coalesced: a crash in between only means
   * resending what was already acknowledged, never losing anything.
   */
  private markAcked(seq: number): void {
    this.ackTarget = Math.max(this.ackTarget, seq);
    for (const first of this.cuts.keys()) if (first <= seq) this.cuts.delete(first);
    void this.o.cursor.advance(seq).catch((err) => this.o.log.warn({ err: (err as Error).message }, 'sync cursor not persisted; will retry'));
    if (!this.acking) this.acking = this.persistAcks().finally(() => (this.acking = undefined));
  }

  private async persistAcks(final = false): Promise<void> {
    while (this.persistedAck < this.ackTarget) {
      const target = this.ackTarget;
      try {
        await this.o.cursor.advance(target);
        // Deleting from the outbox competes with the drain's own reads in LevelDB
        // (measured: 48k vs 103k records/s when released after every batch), and only
        // frees disk: the cursor file is what makes progress durable. Release in bulk.
        const now = this.o.clock.now();
        if (this.ackOutbox && (final || now - this.lastRelease >= this.o.releaseIntervalMs)) {
          this.lastRelease = now;
          await this.ackOutbox(target);
          this.released = target;
        }
        this.persistedAck = target;
      } catch (err) {
        // Stopping with the store already closed: the cursor file has what it can; the next start resends the rest.
        if (this.abort.signal.aborted) {
          this.o.log.warn({ err: (err as Error).message, target }, 'sync stopped before acknowledged records were released from the outbox');
          return;
        }
        this.o.log.warn({ err: (err as Error).message, target }, 'acknowledged outbox records not released yet; retrying');
        await this.o.clock.sleep(1000);
      }
    }
  }

  private async flushAcks(): Promise<void> {
    while (this.acking) await this.acking;
    if (this.persistedAck < this.ackTarget || (this.ackOutbox && this.released < this.persistedAck)) {
      this.persistedAck = Math.min(this.persistedAck, this.released);
      await this.persistAcks(true);
    }
  }

  /** Releases acknowledged records from the outbox now (idle, or the bulk interval elapsed). */
  private releaseIfDue(): void {
    if (!this.ackOutbox || this.released >= this.persistedAck || this.acking) return;
    if (this.o.clock.now() - this.lastRelease < this.o.releaseIntervalMs) return;
    this.persistedAck = this.released;
    this.acking = this.persistAcks(true).finally(() => (this.acking = undefined));
  }

  private idle(ms: number, ignoreNewData = false): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      const stepMs = Math.min(ms, this.o.pollMs);
      // New outbox records cut an idle wait short (not a backoff wait: that would defeat it).
      const poll = ignoreNewData
        ? undefined
        : setInterval(() => {
            if (this.o.store.stats().lastSeq > this.o.cursor.value) done();
          }, stepMs);
      const onAbort = (): void => done();
      this.abort.signal.addEventListener('abort', onAbort, { once: true });
      const self = this;
      function done(): void {
        clearTimeout(timer);
        if (poll) clearInterval(poll);
        self.abort.signal.removeEventListener('abort', onAbort);
        if (self.wakeUp === done) self.wakeUp = undefined;
        resolve();
      }
      // A link coming up or a stop wakes a backoff wait too (the link being up is the news).
      this.wakeUp = done;
    });
  }
}
