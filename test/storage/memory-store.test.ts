import t from 'tap';
import { MemoryStore } from '../../storage/memory-store.js';
import { storeContract } from './contract.js';

storeContract(t, 'MemoryStore', async () => ({
  async open() {
    const store = new MemoryStore();
    await store.open();
    return store;
  },
}));
