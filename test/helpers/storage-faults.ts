import type { LevelStore } from '../../storage/level-store.js';

type BatchDb = { batch(...args: unknown[]): { write(options?: unknown): Promise<void>; close(): Promise<void> } };

/**
 * Makes the store's commits fail as a full disk makes them (the chained batch's write
 * rejects with ENOSPC's message), for the next one only or for every one. Reads and the
 * store's own recovery (a reopen makes a new database object) are untouched.
 */
export function failCommits(store: LevelStore, o: { once: boolean }): void {
  const db = store.db as unknown as BatchDb;
  const batchOf = db.batch.bind(db);
  let armed = true;
  db.batch = (...args: unknown[]) => {
    const batch = batchOf(...args);
    if (args.length === 0 && armed) {
      if (o.once) armed = false;
      batch.write = async () => {
        await batch.close();
        throw new Error('No space left on device (injected write failure)');
      };
    }
    return batch;
  };
}
