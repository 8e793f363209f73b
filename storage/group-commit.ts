/**
 * Group commit: writes that arrive while a commit is in flight are gathered and
 * committed together, so many writers share one fsync. An idle store commits at
 * once (next tick); a busy one commits as fast as the disk allows, up to
 * `maxBatch` items per commit. `maxPending` bounds memory: writers wait for room.
 */
export interface GroupCommitOptions<T> {
  commit(items: T[]): Promise<void>;
  maxBatch: number;
  maxPending: number;
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
      this.schedule();
    });
  }

  /** Resolves once everything added so far is committed (or failed). */
  async flush(): Promise<void> {
    if (this.queue.length === 0 && !this.running) return;
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

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.waiters.length > 0) {
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
        try {
          if (items.length > 0) await this.options.commit(items);
          this.commits++;
          this.written += items.length;
          for (const waiter of batchWaiters) waiter.resolve();
        } catch (err) {
          for (const waiter of batchWaiters) waiter.reject(err);
        }
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
