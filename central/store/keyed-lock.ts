/**
 * One holder per key at a time (a promise chain per key, removed when idle, so memory follows
 * the keys in use, not every key ever seen). The level store runs each gateway's
 * check-then-write under it: two copies of a seq arriving together (HTTP retry racing the
 * first try, the live lane and history, satellite and backfill) cannot both find it new.
 * Different gateways do not wait for each other, and their writes share group commits.
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = before.then(() => mine);
    this.tails.set(key, tail);
    await before;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** Keys with a holder or waiters (for tests: must go back to 0). */
  get size(): number {
    return this.tails.size;
  }
}
