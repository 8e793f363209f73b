import type { Level } from 'level';
import { OutpostError } from '../core/errors.js';
import './errors.js';

export type BrokerOp = { type: 'put'; key: string; value: string } | { type: 'del'; key: string };

export interface BrokerWritesOptions {
  db: Level<string, Buffer | string>;
  /** fsync each batch (see LevelBrokerPersistenceOptions.sync). */
  sync?: boolean;
  /** While writes fail, the deferred ones are tried again this often (default 5000 ms). */
  retryMs?: number;
  /** Writes started failing (an error) or caught up again (undefined): the gateway says so once. */
  onError?: (error: OutpostError | undefined) => void;
  /**
   * False while the database must not be written (the store's read-only alarm: after a failed
   * write the next one would land behind a torn log record). Writes are then deferred without
   * being tried, until `resume()`.
   */
  writable?: () => boolean;
}

/**
 * The disk side of the broker state: ordered, batched write-through (one batch at a time,
 * everything queued meanwhile goes in the next).
 *
 * A failed batch (disk full, I/O error, the database being reopened) is not an error for the
 * broker: the state in memory is the truth and the disk only mirrors it for a restart. The
 * failed operations are kept, one per key (each one sets a whole key, so the last one per key
 * is all the disk needs), written ahead of the next batch and retried on a timer until they
 * land. Rejecting instead made the broker fail its own work while storage was full: connects
 * (Aedes' will handling leaves such a rejection unhandled and the process died), SUBSCRIBEs,
 * and the retained read-only alarm itself, which was then never delivered.
 * A crash while operations are deferred loses them, as a crash of an in-memory broker would.
 */
export class BrokerWrites {
  private pending: BrokerOp[] = [];
  private waiters: Array<() => void> = [];
  /** Operations whose write failed, last one per key, in the order their keys were last deferred. */
  private readonly deferred = new Map<string, BrokerOp>();
  /** The deferred operations are to be tried with the next batch (retry timer, resume). */
  private due = false;
  private writing = false;
  private retry: NodeJS.Timeout | undefined;
  private failing = false;
  private closed = false;

  constructor(private readonly o: BrokerWritesOptions) {}

  /** Operations not yet on disk because writes failed or were held back. */
  get deferredCount(): number {
    return this.deferred.size;
  }

  /** Queues operations; resolves once they are in LevelDB, or deferred after a failed write. */
  write(ops: BrokerOp[]): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      for (const op of ops) this.pending.push(op);
      this.waiters.push(resolve);
      if (!this.writing) void this.drain();
    });
  }

  /** The database is writable again: write what was deferred. */
  resume(): void {
    clearTimeout(this.retry);
    this.retry = undefined;
    this.due = true;
    if (!this.writing && !this.closed) void this.drain();
  }

  private async drain(): Promise<void> {
    this.writing = true;
    while (this.pending.length > 0 || (this.due && this.deferred.size > 0 && !this.closed)) {
      // Deferred operations go first: a later operation on the same key must land after them.
      const ops = this.deferred.size > 0 ? [...this.deferred.values(), ...this.pending] : this.pending;
      const waiters = this.waiters;
      this.pending = [];
      this.waiters = [];
      this.deferred.clear();
      this.due = false;
      if (this.o.writable && !this.o.writable()) {
        this.defer(ops);
      } else {
        try {
          await this.o.db.batch(ops, { sync: this.o.sync ?? false });
          if (this.failing) {
            this.failing = false;
            this.o.onError?.(undefined);
          }
        } catch (err) {
          this.defer(ops);
          this.failed(err);
        }
      }
      for (const resolve of waiters) resolve();
    }
    this.writing = false;
  }

  private defer(ops: readonly BrokerOp[]): void {
    for (const op of ops) {
      // Re-inserted at the end when the key comes again: its last operation wins.
      this.deferred.delete(op.key);
      this.deferred.set(op.key, op);
    }
  }

  private failed(err: unknown): void {
    if (!this.failing) {
      this.failing = true;
      this.o.onError?.(
        new OutpostError('STORAGE_WRITE_FAILED', `broker state write failed, kept in memory and retried: ${(err as Error).message}`, { cause: err }),
      );
    }
    // With a writable() gate, resume() says when to try again; without one, a timer does
    // (not a tight loop against a full disk).
    if (this.o.writable || this.retry || this.closed) return;
    this.retry = setTimeout(() => this.resume(), this.o.retryMs ?? 5000);
    this.retry.unref();
  }

  /** Lets queued writes land and tries the deferred ones once more; what still fails is lost (the broker stops). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    this.retry = undefined;
    while (this.writing) await new Promise((r) => setImmediate(r));
    if (this.deferred.size === 0) return;
    const ops = [...this.deferred.values()];
    this.deferred.clear();
    if (this.o.writable && !this.o.writable()) {
      this.o.onError?.(new OutpostError('STORAGE_WRITE_FAILED', `${ops.length} broker state change(s) not written at shutdown: storage is read-only`));
      return;
    }
    await this.o.db
      .batch(ops, { sync: this.o.sync ?? false })
      .catch((err: unknown) =>
        this.o.onError?.(
          new OutpostError('STORAGE_WRITE_FAILED', `${ops.length} broker state change(s) not written at shutdown: ${(err as Error).message}`, { cause: err }),
        ),
      );
  }
}
