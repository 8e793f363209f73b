/**
 * The datapoint registry (runtime/datapoints/registry.ts): many definitions in one durable
 * write, all or none, ownership checked before anything is written.
 */
import t from 'tap';
import { Writable } from 'node:stream';
import { DatapointRegistry } from '../../runtime/datapoints/registry.js';
import { createLogger } from '../../runtime/log.js';
import { MemoryStore } from '../../storage/memory-store.js';
import type { Datapoint } from '../../core/datapoint.js';

async function harness(): Promise<{ registry: DatapointRegistry; writes: Datapoint[][]; store: MemoryStore }> {
  const store = new MemoryStore();
  await store.open();
  const writes: Datapoint[][] = [];
  const putDatapoints = store.putDatapoints.bind(store);
  store.putDatapoints = async (dps) => {
    writes.push([...dps]);
    await putDatapoints(dps);
  };
  const log = createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
  return { registry: new DatapointRegistry(store, log), writes, store };
}

t.test('many definitions: one durable write of those that changed; listeners hear each', async (t) => {
  const { registry, writes, store } = await harness();
  const heard: string[] = [];
  registry.onChange((dp) => heard.push(dp.id));
  const defs = Array.from({ length: 160 }, (_, i) => ({ id: `bms.p${i}`, adapter: 'bms', unit: 'kW' }));
  const out = await registry.registerMany(defs);
  t.equal(out.length, 160);
  t.equal(writes.length, 1, 'one write for 160 definitions');
  t.equal(writes[0]!.length, 160);
  t.equal(heard.length, 160);
  t.equal((await store.listDatapoints()).length, 160, 'all stored');
  // Again, one of them changed: only that one is written.
  await registry.registerMany(defs.map((d, i) => (i === 7 ? { ...d, unit: 'W' } : d)));
  t.same(
    writes.at(-1)!.map((d) => [d.id, d.unit]),
    [['bms.p7', 'W']],
    'only the changed definition is written',
  );
  t.equal(registry.get('bms.p7')!.unit, 'W');
  await registry.registerMany(defs.map((d, i) => (i === 7 ? { ...d, unit: 'W' } : d)));
  t.equal(writes.length, 2, 'nothing changed: nothing written');
});

t.test('all or none: an invalid definition or a datapoint of another adapter writes nothing', async (t) => {
  const { registry, writes } = await harness();
  await registry.register({ id: 'owned', adapter: 'modbus' });
  const before = writes.length;
  await t.rejects(
    registry.registerMany([
      { id: 'ok.one', adapter: 'bms' },
      { id: 'Bad Id!', adapter: 'bms' },
    ]),
    { code: 'DP_INVALID' },
  );
  await t.rejects(
    registry.registerMany([
      { id: 'ok.two', adapter: 'bms' },
      { id: 'owned', adapter: 'bms' },
    ]),
    { code: 'DP_CONFLICT', message: /owned by adapter "modbus"/ },
  );
  await t.rejects(registry.registerMany([{ id: 'ok.three', adapter: 'bms', min: 5, max: 1 }]), { code: 'DP_INVALID', message: /min 5 is above max 1/ });
  t.equal(writes.length, before, 'nothing written');
  t.equal(registry.get('ok.one'), undefined);
  t.equal(registry.get('ok.two'), undefined);
  // Nothing was claimed either (every definition is checked first): another adapter may still take these ids.
  await registry.register({ id: 'ok.two', adapter: 'ocpp' });
  t.equal(registry.get('ok.two')!.adapter, 'ocpp');
});

t.test('two adapters registering the same id at once: the second fails; a failed write keeps the claim for a retry', async (t) => {
  const { registry, store } = await harness();
  const results = await Promise.allSettled([
    registry.registerMany([{ id: 'shared.p', adapter: 'one' }]),
    registry.registerMany([{ id: 'shared.p', adapter: 'two' }]),
  ]);
  t.equal(results[0]!.status, 'fulfilled');
  t.match(results[1], { status: 'rejected', reason: { code: 'DP_CONFLICT' } });
  const putDatapoints = store.putDatapoints.bind(store);
  store.putDatapoints = async () => {
    store.putDatapoints = putDatapoints;
    throw new Error('disk full (test)');
  };
  await t.rejects(registry.registerMany([{ id: 'fresh.p', adapter: 'one' }]), /disk full/);
  t.equal(registry.get('fresh.p'), undefined, 'not registered');
  await t.rejects(registry.register({ id: 'fresh.p', adapter: 'two' }), { code: 'DP_CONFLICT' }, 'still claimed by the adapter that tried');
  await registry.register({ id: 'fresh.p', adapter: 'one' });
  t.equal(registry.get('fresh.p')!.adapter, 'one', 'which registers it on its retry');
});
