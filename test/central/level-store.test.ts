import t from 'tap';
import { LevelCentralStore } from '../../central/store/level.js';
import type { CentralStore } from '../../central/store/contract.js';
import { tempDir } from '../helpers/teardown.js';
import { centralStoreContract } from './store-contract.js';

const dirs = new WeakMap<CentralStore, string>();

centralStoreContract(t, {
  async open(t) {
    const dataDir = await tempDir(t, 'outpost-central-');
    const store = new LevelCentralStore({ dataDir });
    await store.open();
    dirs.set(store, dataDir);
    t.teardown(() => store.close());
    return store;
  },
  async reopen(t, store) {
    await store.close();
    const dataDir = dirs.get(store)!;
    const again = new LevelCentralStore({ dataDir });
    await again.open();
    dirs.set(again, dataDir);
    t.teardown(() => again.close());
    return again;
  },
});
