/**
 * Group commit in the PostgreSQL store (central/store/postgres/group-commit.ts, insert.ts):
 * batches that arrive while a transaction runs are written together in the next one. First
 * the queue alone (merging, the bound per transaction, a failed group run again batch by
 * batch), then a real cluster: three batches of two gateways in one transaction, overlapping
 * seqs decided as if they had committed one after the other, and a batch PostgreSQL refuses
 * failing alone while the rest of its group commits.
 */
import t from 'tap';
import { OutpostError } from '../../core/errors.js';
import type { IngestRecord, Receipt } from '../../central/store/contract.js';
import { PostgresCentralStore } from '../../central/store/postgres.js';
import { GroupCommit } from '../../central/store/postgres/group-commit.js';
import { postgresSkip, psql, startThrowawayPostgres } from '../helpers/postgres.js';

const T0 = Date.UTC(2026, 11, 1, 10);
const rx = (at: number, key?: string): Receipt => ({ via: 'mqtt', lane: 'history', at, ...(key ? { key } : {}) });
const records = (first: number, last: number, ids = 4): IngestRecord[] =>
  Array.from({ length: last - first + 1 }, (_, i) => ({ id: `dp.${(first + i) % ids}`, t: T0 + (first + i) * 1000, v: first + i, seq: first + i }));

t.test('the queue: what waits is merged, bounded per transaction, and a failed group is run again batch by batch', async (t) => {
  const groups: string[][] = [];
  const gates: Array<() => void> = [];
  const commits = new GroupCommit<string, string>(
    async (entries) => {
      groups.push(entries);
      await new Promise<void>((resolve) => gates.push(resolve));
      if (entries.includes('poison')) throw new Error('refused by the database');
      return entries.map((e) => `ok:${e}`);
    },
    { concurrency: 1, maxRecords: 10 },
  );
  /** Lets the running transaction finish (once it has started). */
  const finish = async () => {
    for (let i = 0; i < 10 && gates.length === 0; i++) await new Promise((r) => setImmediate(r));
    gates.shift()!();
  };
  const first = commits.submit('a', 4);
  const waiting = ['b', 'c', 'd', 'e'].map((e) => commits.submit(e, 4));
  t.same(groups, [['a']], 'an idle store commits the first batch at once');
  t.equal(commits.waiting, 4, 'the others wait for the running transaction');
  await finish();
  t.equal(await first, 'ok:a');
  await new Promise((r) => setImmediate(r));
  t.same(groups[1], ['b', 'c'], 'the next transaction takes what waited, up to maxRecords (4 + 4 ≤ 10 < 12)');
  await finish();
  await new Promise((r) => setImmediate(r));
  t.same(groups[2], ['d', 'e']);
  await finish();
  t.same(await Promise.all(waiting), ['ok:b', 'ok:c', 'ok:d', 'ok:e'], 'each caller gets its own result');

  const big = commits.submit('big', 50);
  await new Promise((r) => setImmediate(r));
  t.same(groups.at(-1), ['big'], 'a batch larger than maxRecords goes alone');
  await finish();
  await big;

  // A group holding a batch the database refuses: run again one at a time, only that one fails.
  const blocker = commits.submit('x', 1);
  while (groups.at(-1)?.[0] !== 'x') await new Promise((r) => setImmediate(r));
  const mixed = ['g1', 'poison', 'g2'].map((e) =>
    commits.submit(e, 1).then(
      (r) => r,
      (err: Error) => `failed:${err.message}`,
    ),
  );
  await finish();
  await blocker;
  await new Promise((r) => setImmediate(r));
  t.same(groups.at(-1), ['g1', 'poison', 'g2']);
  await finish(); // the group fails
  for (let i = 0; i < 3; i++) await finish();
  t.same(await Promise.all(mixed), ['ok:g1', 'failed:refused by the database', 'ok:g2'], 'the refused batch fails alone');
  t.same(groups.slice(-3), [['g1'], ['poison'], ['g2']], 'alone, in arrival order');

  // The database unreachable: every batch of the group fails at once, none is tried alone.
  let calls = 0;
  const release: Array<() => void> = [];
  const down = new GroupCommit<string, string>(
    async () => {
      calls++;
      await new Promise<void>((resolve) => release.push(resolve));
      throw new OutpostError('STORAGE_WRITE_FAILED', 'PostgreSQL refused the write');
    },
    { concurrency: 1, maxRecords: 10 },
  );
  const outcomes = ['p', 'q', 'r'].map((e) =>
    down.submit(e, 1).then(
      () => 'committed',
      (err: OutpostError) => err.code,
    ),
  );
  release.shift()!();
  await new Promise((r) => setImmediate(r));
  release.shift()!();
  t.same(await Promise.all(outcomes), ['STORAGE_WRITE_FAILED', 'STORAGE_WRITE_FAILED', 'STORAGE_WRITE_FAILED'], 'unreachable: all refused');
  t.equal(calls, 2, 'one try for the first, one for the group of the other two: no batch-by-batch retries');
});

t.test('on PostgreSQL: several batches, two gateways, one transaction; a refused batch fails alone', postgresSkip(), async (t) => {
  const pg = await startThrowawayPostgres(t);
  const url = await pg.createDatabase('outpost_group');
  const store = new PostgresCentralStore({ url, refreshMs: 0, commitConcurrency: 1 });
  await store.open();
  t.teardown(() => store.close());

  // The first insert takes the one transaction slot; the three after it wait and go together.
  const head = store.insertReadings('site-a', records(1, 10), rx(T0, 'site-a:1-10'));
  const grouped = [
    store.insertReadings('site-a', records(11, 100), rx(T0 + 1, 'site-a:11-100')),
    store.insertReadings('site-a', records(51, 150), rx(T0 + 2, 'site-a:51-150')), // a copy of 51..100, after a reconnect
    store.insertReadings('site-b', records(1, 100), rx(T0 + 3, 'site-b:1-100')),
  ];
  t.same(await head, { stored: 10, duplicates: 0 });
  t.same(await Promise.all(grouped), [
    { stored: 90, duplicates: 0 },
    { stored: 50, duplicates: 50 },
    { stored: 100, duplicates: 0 },
  ]);
  const xids = await psql(url, `SELECT count(DISTINCT xmin::text) FROM outpost.receipts WHERE key <> 'site-a:1-10'`);
  t.equal(xids.trim(), '1', 'the three waiting batches were committed by one transaction');
  t.equal(await store.countSeqs('site-a'), 150);
  t.equal(await store.countReadings('site-a'), 150);
  t.equal(await store.countReadings('site-b'), 100);
  const receipts = await psql(url, `SELECT key || ' ' || stored || ' ' || duplicates FROM outpost.receipts ORDER BY at`);
  t.same(receipts.trim().split('\n'), ['site-a:1-10 10 0', 'site-a:11-100 90 0', 'site-a:51-150 50 50', 'site-b:1-100 100 0'], 'a receipt per batch');
  const newest = await store.latest('site-a', 'dp.2');
  t.equal(newest?.v, 150, "each datapoint's newest reading is the newest of the whole group");

  // PostgreSQL's jsonb cannot hold U+0000: a batch with such a string is refused by the database.
  // Its group's other batches commit all the same.
  const blocker = store.insertReadings('site-c', records(1, 1), rx(T0 + 10));
  const mixed = [
    store.insertReadings('site-c', records(2, 20), rx(T0 + 11, 'site-c:2-20')),
    store.insertReadings('site-d', [{ id: 'label', t: T0, v: 'pad\u0000ded', seq: 1 }], rx(T0 + 12, 'site-d:1-1')),
    store.insertReadings('site-e', records(1, 20), rx(T0 + 13, 'site-e:1-20')),
  ].map((p) =>
    p.then(
      (r) => r,
      (err: Error) => err,
    ),
  );
  await blocker;
  const [c, d, e] = await Promise.all(mixed);
  t.same(c, { stored: 19, duplicates: 0 });
  t.same(e, { stored: 20, duplicates: 0 });
  t.ok(d instanceof Error, 'the batch the database refuses fails', { found: d });
  t.equal(await store.countReadings('site-d'), 0, 'and stores nothing');
  t.equal(await store.countSeqs('site-d'), 0, 'nor its seqs: a redelivery is stored, not called a duplicate');
});
