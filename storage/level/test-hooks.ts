import type { BatchOp, StoreDb } from './db.js';

/** A commit's chained batch as a test sees it: its methods may be replaced to inject faults. */
export type CommitBatch = ReturnType<StoreDb['batch']>;

/** A key range of the raw database (LevelDB order). */
export interface KeyRange {
  gte: string;
  lt: string;
}

/**
 * What tests may do to a LevelStore from outside (LevelStore.testHooks): read and plant raw
 * keys (the on-disk format, values as earlier versions wrote them) and inject faults into
 * commits. Not for production code: everything else goes through the Store contract and the
 * declared capabilities (storage/store.ts).
 */
export interface LevelTestHooks {
  /** Keys in a range. */
  keys(range: KeyRange): Promise<string[]>;
  /** Entries in a range, values as stored bytes. */
  entries(range: KeyRange): Promise<Array<[string, Buffer]>>;
  /** One value as stored bytes (undefined: no such key). */
  get(key: string): Promise<Buffer | undefined>;
  /** Writes raw operations, bypassing the store (its caches do not see them). */
  batch(ops: BatchOp[]): Promise<void>;
  /**
   * Sees each commit's chained batch as it is made, before anything is put into it (undefined:
   * none): replace its `write` or `put` to make a commit fail as a full disk or a failed
   * preparation would. Stays until replaced; survives the store's own reopen (recovery).
   */
  onCommitBatch(fn: ((batch: CommitBatch) => void) | undefined): void;
}

export function testHooksOf(level: StoreDb, setOnBatch: (fn: ((batch: CommitBatch) => void) | undefined) => void): LevelTestHooks {
  return {
    keys: (range) => level.keys(range).all(),
    entries: async (range) => (await level.iterator(range).all()) as Array<[string, Buffer]>,
    get: async (key) => (await level.get(key)) as Buffer | undefined,
    batch: (ops) => level.batch(ops),
    onCommitBatch: setOnBatch,
  };
}
