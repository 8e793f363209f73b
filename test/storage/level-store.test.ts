import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelStore } from '../../storage/level/level-store.js';
import type { Store } from '../../storage/store.js';
import { storeContract } from './contract.js';

storeContract(t, 'LevelStore', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-store-'));
  let current: LevelStore | undefined;
  t.teardown(async () => {
    await current?.close();
    await rm(dir, { recursive: true, force: true });
  });
  return {
    async open() {
      current = new LevelStore({ path: join(dir, 'db') });
      await current.open();
      return current;
    },
    async reopen(store: Store) {
      await store.close();
      current = new LevelStore({ path: join(dir, 'db') });
      await current.open();
      return current;
    },
  };
});
