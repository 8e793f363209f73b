import t from 'tap';
import type { Level } from 'level';
import { BrokerWrites, type BrokerOp } from '../../storage/broker-writes.js';

/**
 * Broker state writes while the disk is full: kept in memory (the broker's state is the truth,
 * the disk mirrors it for a restart), never rejected (Aedes left such a rejection unhandled at
 * every CONNECT and the process died), written once the database takes writes again.
 */

/** A database whose batch fails while `full` is set, recording what landed. */
function fakeDb(): { db: Level<string, Buffer | string>; disk: Map<string, string>; state: { full: boolean; batches: number } } {
  const disk = new Map<string, string>();
  const state = { full: false, batches: 0 };
  const db = {
    async batch(ops: BrokerOp[]) {
      state.batches++;
      await new Promise((r) => setImmediate(r));
      if (state.full) throw Object.assign(new Error('IO error: 000003.log: No space left on device'), { code: 'LEVEL_IO_ERROR' });
      for (const op of ops) {
        if (op.type === 'put') disk.set(op.key, op.value);
        else disk.delete(op.key);
      }
    },
  } as unknown as Level<string, Buffer | string>;
  return { db, disk, state };
}

t.test('a failed write resolves, is reported once, and lands (last operation per key) when retried', async (t) => {
  const { db, disk, state } = fakeDb();
  const errors: Array<string | undefined> = [];
  const writes = new BrokerWrites({ db, retryMs: 20, onError: (e) => errors.push(e?.message) });
  await writes.write([{ type: 'put', key: 'b!w!a', value: 'will-a' }]);
  state.full = true;
  await writes.write([{ type: 'put', key: 'b!r!x', value: '1' }]);
  await writes.write([
    { type: 'put', key: 'b!r!x', value: '2' },
    { type: 'del', key: 'b!w!a' },
  ]);
  t.equal(errors.length, 1, 'reported once');
  t.match(errors[0], /kept in memory and retried: .*No space left/);
  t.equal(writes.deferredCount, 2, 'one operation per key kept');
  t.same([...disk], [['b!w!a', 'will-a']], 'nothing landed yet');
  state.full = false;
  await new Promise((r) => setTimeout(r, 100));
  t.same([...disk], [['b!r!x', '2']], 'the last operation of each key landed');
  t.equal(writes.deferredCount, 0);
  t.equal(errors.at(-1), undefined, 'recovery reported');
  await writes.close();
});

t.test('while the store says the database must not be written, nothing is tried until resume()', async (t) => {
  const { db, disk, state } = fakeDb();
  let writable = false;
  const writes = new BrokerWrites({ db, writable: () => writable });
  await writes.write([{ type: 'put', key: 'b!s!c!t', value: '{"qos":1}' }]);
  t.equal(state.batches, 0, 'no write tried while held back');
  t.equal(writes.deferredCount, 1);
  writable = true;
  writes.resume();
  await new Promise((r) => setTimeout(r, 20));
  t.same([...disk], [['b!s!c!t', '{"qos":1}']], 'written on resume');
  await writes.close();
});

t.test('later writes queue behind the deferred ones, in one batch', async (t) => {
  const { db, disk, state } = fakeDb();
  const writes = new BrokerWrites({ db, retryMs: 10_000 });
  state.full = true;
  await writes.write([{ type: 'put', key: 'k1', value: 'a' }]);
  state.full = false;
  const before = state.batches;
  await writes.write([{ type: 'put', key: 'k2', value: 'b' }]);
  t.equal(state.batches, before + 1, 'one batch');
  t.same(
    [...disk].sort(),
    [
      ['k1', 'a'],
      ['k2', 'b'],
    ],
    'the deferred operation went with it',
  );
  await writes.close();
});

t.test('close tries the deferred operations once more and reports what is lost', async (t) => {
  const { db, state } = fakeDb();
  const errors: Array<string | undefined> = [];
  const writes = new BrokerWrites({ db, retryMs: 10_000, onError: (e) => errors.push(e?.message) });
  state.full = true;
  await writes.write([{ type: 'put', key: 'k', value: 'v' }]);
  await writes.close();
  t.match(errors.at(-1), /1 broker state change\(s\) not written at shutdown/);
});

t.test('Aedes on broker state whose disk is full: clients connect, with and without a will, and retained messages go out', async (t) => {
  const { Aedes } = await import('aedes');
  const mqtt = (await import('mqtt')).default;
  const { createServer } = await import('node:net');
  const { createBrokerPersistence } = await import('../../storage/broker-persistence.js');
  const { db, state } = fakeDb();
  // The shared database as the gateway hands it over: loaded at setup, then written through.
  (db as unknown as { iterator(): AsyncIterable<never> }).iterator = async function* () {};
  const persistence = createBrokerPersistence({ db });
  const aedes = await Aedes.createBroker({ persistence });
  const server = createServer((socket) => aedes.handle(socket));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(async () => {
    await new Promise<void>((r) => aedes.close(() => r()));
    await new Promise<void>((r) => server.close(() => r()));
  });
  const url = `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`;
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown): void => void unhandled.push(err);
  process.on('unhandledRejection', onUnhandled);
  t.teardown(() => process.off('unhandledRejection', onUnhandled));

  state.full = true;
  const withWill = await mqtt.connectAsync(url, {
    clientId: 'dev-will',
    will: { topic: 'dev/status', payload: Buffer.from('offline'), qos: 1, retain: true },
    reconnectPeriod: 0,
  });
  const plain = await mqtt.connectAsync(url, { clientId: 'reader', clean: false, reconnectPeriod: 0 });
  await plain.subscribeAsync('site/alarm', { qos: 1 });
  const got = new Promise<string>((resolve) => plain.once('message', (_topic, payload) => resolve(payload.toString())));
  await new Promise<void>((resolve, reject) =>
    aedes.publish({ cmd: 'publish', topic: 'site/alarm', payload: Buffer.from('read-only'), qos: 0, retain: true, dup: false }, (err) =>
      err ? reject(err) : resolve(),
    ),
  );
  let timer: NodeJS.Timeout | undefined;
  const delivered = await Promise.race([got, new Promise<string>((r) => (timer = setTimeout(() => r('nothing within 5 s'), 5000)))]);
  clearTimeout(timer);
  t.equal(delivered, 'read-only', 'a retained message is delivered though it could not be stored');
  // A reconnect: Aedes deletes the will at every CONNECT and left that rejection unhandled.
  await withWill.endAsync();
  const again = await mqtt.connectAsync(url, { clientId: 'dev-will', reconnectPeriod: 0 });
  await new Promise((r) => setTimeout(r, 50));
  t.same(unhandled, [], 'no unhandled rejection (it used to end the process)');
  await again.endAsync();
  await plain.endAsync();
});
