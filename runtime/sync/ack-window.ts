import { toOutpostError, type OutpostError } from '../../core/errors.js';
import type { Batch } from './link.js';

interface Entry {
  batch: Batch;
  state: 'pending' | 'ok' | 'failed';
  bytes: number;
  err?: OutpostError;
  /** Resolves once the send settled, either way. */
  settled: Promise<void>;
}

/**
 * The history batches of one drain round that are sent and not yet acknowledged, in
 * send order. Acknowledgements are taken as they arrive, from the send promises
 * themselves: `onAcked` runs for every batch of the contiguous acknowledged prefix at
 * once, whatever the drain is doing meanwhile (sleeping off the bandwidth cap, reading
 * the outbox, waiting for window space). Before, acknowledgements were looked at only
 * when the window was full, so with a bandwidth cap the cursor stood still while a
 * whole window trickled out, and a kill then resent all of it.
 *
 * A batch acknowledged after one that failed is not passed on: the cursor only ever
 * covers a contiguous prefix, and the drain resends from the failure.
 */
export class AckWindow {
  private readonly entries: Entry[] = [];
  private waiters: Array<() => void> = [];

  constructor(
    private readonly onAcked: (batch: Batch, bytes: number) => void,
    /** Called once, on the first failure: the drain stops sending into a window that will be resent. */
    private readonly onFailure: () => void,
  ) {}

  /** Batches in flight (or acknowledged behind a failure). */
  get size(): number {
    return this.entries.length;
  }

  add(batch: Batch, outcome: Promise<number>): void {
    const entry: Entry = { batch, state: 'pending', bytes: 0, settled: Promise.resolve() };
    entry.settled = outcome.then(
      (bytes) => {
        entry.state = 'ok';
        entry.bytes = bytes;
        this.advance();
      },
      (err: unknown) => {
        const first = this.failure === undefined;
        entry.state = 'failed';
        entry.err = toOutpostError(err);
        if (first) this.onFailure();
        this.notify();
      },
    );
    this.entries.push(entry);
  }

  /** The earliest failed batch still in the window (all before it are acknowledged or pending). */
  get failure(): { batch: Batch; err: OutpostError } | undefined {
    const e = this.entries.find((x) => x.state === 'failed');
    return e && { batch: e.batch, err: e.err! };
  }

  /**
   * Waits until every batch sent before the earliest failure has settled, so the caller
   * knows whether the failed batch is the first unacknowledged one. Returns it then.
   */
  async settleBeforeFailure(): Promise<{ batch: Batch; err: OutpostError; atHead: boolean } | undefined> {
    for (;;) {
      const i = this.entries.findIndex((x) => x.state === 'failed');
      if (i < 0) return undefined;
      const before = this.entries.slice(0, i).filter((x) => x.state === 'pending');
      if (before.length === 0) {
        const e = this.entries[i]!;
        return { batch: e.batch, err: e.err!, atHead: i === 0 };
      }
      await Promise.all(before.map((x) => x.settled));
    }
  }

  /** Resolves at the next acknowledgement or failure. */
  changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private advance(): void {
    while (this.entries[0]?.state === 'ok') {
      const e = this.entries.shift()!;
      this.onAcked(e.batch, e.bytes);
    }
    this.notify();
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
