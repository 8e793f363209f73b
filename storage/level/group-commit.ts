/**
 * Group commit: writes that arrive while a commit is in flight are gathered and
 * committed together, so many writers share one fsync. An idle store commits at
 * once (next tick); a busy one commits as fast as the disk allows, up to
 * `maxBatch` items per commit. `maxPending` bounds memory: writers wait for room.
 *
 * A commit may be pipelined: `commit` resolves once the commit is prepared and its write
 * started, with `{ durable }` settling when it is on disk. The next commit is then prepared
 * while that one is written (the CPU work of one overlaps the other's fsync); at most one
 * prepared commit waits behind the one being written. Writers are answered, in order, when
 * their commit is durable.
 */
export interface GroupCommitOptions<T> {
  commit(items: T[]): Promise<{ durable: Promise<void> } | void>;
  maxBatch: number;
  maxPending: number;
  /**
   * While a commit is being written, the next one is prepared only once this many items wait
   * (or that write is done): a commit's cost is mostly per series, not per item, so one commit
   * of 250 readings over 100 datapoints costs little more than one of 95. Default 1 (prepare
   * at once); at most maxBatch.
   */
  minPipelined?: number;
}

interface Waiter {
  count: number;
  resolve(): void;
  reject(err: unknown): void;
}

export class GroupCommit<T> {
  private queue: T[] = [];
  private waiters: Waiter[] = [];
  private running = false;
  private scheduled = false;
  private roomWaiters: Array<() => void> = [];
  /** Resolves the wait for a pipelined commit's items (minPipelined). */
  private enough: (() => void) | undefined;
  /** The newest prepared commit until its writers are answered. */
  private lastWrite: Promise<void> | undefined;
  commits = 0;
  written = 0;

  constructor(private readonly options: GroupCommitOptions<T>) {}

  get pending(): number {
    return this.queue.length;
  }

  async add(items: readonly T[]): Promise<void> {
    while (this.queue.length >= this.options.maxPending) {
      await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
    }
    return new Promise<void>((resolve, reject) => {
      for (const item of items) this.queue.push(item);
      this.waiters.push({ count: items.length, resolve, reject });
      if (this.enough && this.queue.length >= Math.min(this.options.minPipelined ?? 1, this.options.maxBatch)) this.enough();
      this.schedule();
    });
  }

  /** Resolves once everything added so far is committed (or failed). */
  async flush(): Promise<void> {
    // Not running, nothing queued: the last commit may still be on its way to disk.
    if (this.queue.length === 0 && !this.running) return this.settling;
    await new Promise<void>((resolve) => this.waiters.push({ count: 0, resolve, reject: () => resolve() }));
  }

  private schedule(): void {
    if (this.running || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  /** The newest commit's settling (its writers answered); the next but one waits for it. */
  private settling: Promise<void> = Promise.resolve();

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.waiters.length > 0) {
        // A commit is being written: prepare the next behind it only with enough to share it.
        if (this.lastWrite && this.queue.length < Math.min(this.options.minPipelined ?? 1, this.options.maxBatch)) {
          await Promise.race([this.lastWrite, new Promise<void>((resolve) => (this.enough = resolve))]);
          this.enough = undefined;
        }
        // Take whole writers only, so one writer's points are never split across commits.
        let n = 0;
        let w = 0;
        while (w < this.waiters.length && (w === 0 || n + this.waiters[w]!.count <= this.options.maxBatch)) {
          n += this.waiters[w]!.count;
          w++;
        }
        const items = this.queue.splice(0, n);
        const batchWaiters = this.waiters.splice(0, w);
        this.releaseRoom();
        const before = this.settling;
        let durable: Promise<void>;
        try {
          // Nothing to write (a flush): settled when everything before it is.
          durable = items.length > 0 ? ((await this.options.commit(items))?.durable ?? Promise.resolve()) : before;
        } catch (err) {
          durable = Promise.reject(err);
        }
        const settled = durable.then(
          () => {
            this.commits++;
            this.written += items.length;
            for (const waiter of batchWaiters) waiter.resolve();
          },
          (err: unknown) => {
            for (const waiter of batchWaiters) waiter.reject(err);
          },
        );
        // Writers are answered in commit order, and at most one prepared commit waits
        // behind the one being written: wait for the one before this before preparing more.
        this.settling = before.then(() => settled);
        const write: Promise<void> = settled.then(() => {
          if (this.lastWrite === write) this.lastWrite = undefined;
        });
        this.lastWrite = write;
        await before;
      }
    } finally {
      this.running = false;
    }
  }

  private releaseRoom(): void {
    while (this.roomWaiters.length > 0 && this.queue.length < this.options.maxPending) {
      this.roomWaiters.shift()!();
    }
  }
}
