import t from 'tap';
import { appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeadLetterStore } from '../../runtime/sync/dead-letter.js';
import { RefusalIsolator } from '../../runtime/sync/isolate.js';
import { OutpostError } from '../../core/errors.js';
import { systemClock } from '../../core/clock.js';
import type { Batch } from '../../runtime/sync/link.js';
import type { OutboxRecord } from '../../storage/store.js';
import { testLogger } from './helpers/sync.js';
import { tempDir, type Teardown } from '../helpers/teardown.js';

async function tempFile(t: Teardown): Promise<string> {
  const dir = await tempDir(t, 'outpost-dead-');
  return join(dir, 'sync', 'dead-letter.jsonl');
}

const entry = (seq: number, v: unknown = seq) => ({
  at: 1,
  link: 'ingest',
  record: { seq, id: 'a.x', t: 1, v } as OutboxRecord,
  reason: 'HTTP 400',
  status: 400,
  answer: 'no',
});

t.test('dead-letter store: bounded, durable, a torn last line is dropped', async (t) => {
  const file = await tempFile(t);
  const { log } = testLogger();
  const store = new DeadLetterStore({ file, log, maxEntries: 10 });
  await store.load();
  for (let i = 1; i <= 25; i++) await store.add([entry(i)]);
  const s = store.summary(3);
  t.ok(s.count <= 10, `at most maxEntries kept (${s.count})`);
  t.equal(s.total, 25, 'the running number still counts every one');
  t.same(
    s.newest.map((e) => e.record.seq),
    [25, 24, 23],
    'newest first',
  );
  const lines = (await readFile(file, 'utf8')).trim().split('\n');
  t.equal(lines.length, s.count, 'the file holds what is kept, nothing more');

  // A kill in the middle of an append leaves half a line.
  await appendFile(file, '{"n":26,"at":1,"link":"ingest","rec');
  const again = new DeadLetterStore({ file, log, maxEntries: 10 });
  await again.load();
  t.equal(again.summary().count, s.count, 'the torn line is dropped');
  await again.add([entry(26)]);
  const reread = new DeadLetterStore({ file, log, maxEntries: 10 });
  await reread.load();
  t.equal(reread.summary(1).newest[0]!.record.seq, 26, 'the next append starts on a line of its own');

  // A huge value does not make a huge line.
  await reread.add([{ ...entry(27, 'x'.repeat(100_000)), answer: 'y'.repeat(10_000) }]);
  const big = reread.summary(1).newest[0]!;
  t.equal(big.truncated, true);
  t.ok(JSON.stringify(big).length < 8 * 1024, 'kept small');
  t.equal(big.answer!.length, 500, "the receiver's answer is cut to 500 characters");
});

t.test('isolation: several poison records in one batch, bounded requests, the cursor only over a contiguous prefix', async (t) => {
  const file = await tempFile(t);
  const { log } = testLogger();
  const deadLetters = new DeadLetterStore({ file, log });
  const isolator = new RefusalIsolator({ deadLetters, log, clock: systemClock });
  const records: OutboxRecord[] = Array.from({ length: 1000 }, (_, i) => ({ seq: i + 1, id: 'a.x', t: i, v: i }));
  const poison = new Set([3, 500, 501, 999]);
  const batch: Batch = { key: 'k', gatewayId: 'g', first: 1, last: 1000, records, lane: 'history' };
  let requests = 0;
  const advanced: number[] = [];
  const refuse = (): OutpostError => new OutpostError('SYNC_REJECTED', 'HTTP 400', { details: { status: 400, answer: 'bad record' } });
  await isolator.isolate({
    link: 'ingest',
    batch,
    refusal: refuse(),
    send: async (part) => {
      requests++;
      if (part.some((r) => poison.has(r.seq))) throw refuse();
    },
    advance: (seq) => advanced.push(seq),
  });
  t.same(
    deadLetters
      .summary()
      .newest.map((e) => e.record.seq)
      .sort((a, b) => a - b),
    [3, 500, 501, 999],
    'exactly the refused records set aside',
  );
  t.ok(requests <= 4 * (2 * Math.ceil(Math.log2(1000)) + 1), `${requests} requests for 4 poison records in 1,000`);
  t.same(advanced, [2, 1000], 'the cursor moved over the accepted prefix, then past the batch once the refused records were set aside');

  // Everything refused: nothing set aside, SYNC_BLOCKED.
  const before = deadLetters.summary().total;
  const everything = isolator.isolate({
    link: 'other',
    batch,
    refusal: refuse(),
    send: async () => Promise.reject(refuse()),
    advance: () => t.fail('no advance'),
  });
  await t.rejects(everything, { code: 'SYNC_BLOCKED' });
  t.equal(deadLetters.summary().total, before, 'a receiver refusing everything gets nothing dead-lettered');
});
