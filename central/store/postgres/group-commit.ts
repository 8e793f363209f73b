import { OutpostError } from '../../../core/errors.js';

export interface GroupCommitOptions {
  /** Transactions in flight at most; what arrives meanwhile waits and goes in the next one. */
  concurrency: number;
  /** Records per transaction at most (a single larger batch still goes alone). */
  maxRecords: number;
}

interface Waiting<E, R> {
  entry: E;
  size: number;
  resolve: (result: R) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit: the batches that arrive while `concurrency` transactions are running are
 * written together in the next one — one transaction, one WAL flush, one round of statements
 * for many batches. Nothing waits for a timer: an idle store commits a batch at once, and the
 * busier it is the larger its transactions (bench/README.md "Central ingest": half of the cost
 * of a 100-record batch was per transaction). The queue holds only callers that are waiting
 * for their own commit (each MQTT connection and HTTP request has one at a time), so it is
 * bounded by them.
 *
 * One transaction that fails for a reason other than the database being unreachable is run
 * again one batch at a time, so a batch the database refuses fails alone and the others of
 * its group commit.
 */
export class GroupCommit<E, R> {
  private readonly queue: Waiting<E, R>[] = [];
  private running = 0;

  constructor(
    private readonly write: (entries: E[]) => Promise<R[]>,
    private readonly options: GroupCommitOptions,
  ) {}

  /** Resolves with this entry's result once the transaction holding it has committed. */
  submit(entry: E, size: number): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ entry, size, resolve, reject });
      this.pump();
    });
  }

  /** Batches waiting for a transaction (for tests and metrics). */
  get waiting(): number {
    return this.queue.length;
  }

  private pump(): void {
    while (this.running < this.options.concurrency && this.queue.length > 0) {
      let n = 1;
      let size = this.queue[0]!.size;
      while (n < this.queue.length && size + this.queue[n]!.size <= this.options.maxRecords) size += this.queue[n++]!.size;
      const group = this.queue.splice(0, n);
      this.running++;
      void this.commit(group).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }

  private async commit(group: Waiting<E, R>[]): Promise<void> {
    let results: R[];
    try {
      results = await this.write(group.map((w) => w.entry));
    } catch (err) {
      if (group.length === 1 || isUnavailable(err)) {
        for (const w of group) w.reject(err);
        return;
      }
      // Each alone, in arrival order: the one the database refuses fails, the rest commit.
      for (const w of group) {
        try {
          const [result] = await this.write([w.entry]);
          w.resolve(result!);
        } catch (alone) {
          w.reject(alone);
        }
      }
      return;
    }
    for (const [i, w] of group.entries()) w.resolve(results[i]!);
  }
}

/** The database refuses writes (down, read-only, closed): running the batches one by one would only fail again. */
function isUnavailable(err: unknown): boolean {
  return err instanceof OutpostError && (err.code === 'STORAGE_WRITE_FAILED' || err.code === 'STORAGE_CLOSED');
}
