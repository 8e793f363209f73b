import type { LevelStore } from '../../storage/level/level-store.js';

type WritableBatch = { write(options?: unknown): Promise<void>; close(): Promise<void> };

/**
 * Makes the store's commits fail as a full disk makes them (the chained batch's write
 * rejects with ENOSPC's message), for the next one only or for every one, through the
 * store's commit test hook (LevelStore.testHooks.onCommitBatch). Reads and the store's own
 * writes outside commits are untouched.
 */
export function failCommits(store: LevelStore, o: { once: boolean }): void {
  let armed = true;
  store.testHooks.onCommitBatch((made) => {
    if (!armed) return;
    if (o.once) armed = false;
    const batch = made as unknown as WritableBatch;
    batch.write = async () => {
      await batch.close();
      throw new Error('No space left on device (injected write failure)');
    };
  });
}
