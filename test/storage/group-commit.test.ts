/**
 * GroupCommit (storage/level/group-commit.ts): writers answered when their commit is durable, in
 * order; at most one commit prepared behind the one being written; flush waits for the disk.
 */
import t from 'tap';
import { GroupCommit } from '../../storage/level/group-commit.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

t.test('flush (and so close) waits until the last commit is durable, also when nothing is queued', async (t) => {
  let durableDone = false;
  const commits = new GroupCommit<number>({
    maxBatch: 10,
    maxPending: 100,
    commit: async () => ({ durable: sleep(100).then(() => void (durableDone = true)) }),
  });
  const written = commits.add([1, 2, 3]);
  await sleep(20); // prepared, being written, nothing queued
  await commits.flush();
  t.equal(durableDone, true, 'flush returned after the write');
  await written;
});

t.test('commits are prepared one behind the one being written, never more; writers answered in order', async (t) => {
  let preparing = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const answered: number[] = [];
  const commits = new GroupCommit<number>({
    maxBatch: 1,
    maxPending: 100,
    commit: async () => {
      preparing++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      return { durable: sleep(15).then(() => void inFlight--) };
    },
  });
  await Promise.all([1, 2, 3, 4, 5].map((i) => commits.add([i]).then(() => answered.push(i))));
  t.equal(preparing, 5);
  t.equal(maxInFlight, 2, 'one being written, one prepared behind it');
  t.same(answered, [1, 2, 3, 4, 5]);
});

t.test('minPipelined: a commit is prepared behind one being written only once enough items wait, else after that write', async (t) => {
  const sizes: number[] = [];
  let writing = 0;
  const preparedDuringWrite: number[] = [];
  const commits = new GroupCommit<number>({
    maxBatch: 1000,
    maxPending: 10_000,
    minPipelined: 10,
    commit: async (items) => {
      sizes.push(items.length);
      if (writing > 0) preparedDuringWrite.push(items.length);
      writing++;
      return { durable: sleep(30).then(() => void writing--) };
    },
  });
  const first = commits.add([0]);
  await sleep(5); // the first commit is being written
  // Three writers of 2 items: fewer than 10 wait, so they go together once the first is written.
  const small = [1, 2, 3].map((i) => commits.add([i, i]));
  await Promise.all([first, ...small]);
  t.same(sizes, [1, 6], 'the three small writers shared one commit, prepared after the write');
  t.same(preparedDuringWrite, [], 'none prepared while writing');

  const big = commits.add([9]);
  await sleep(5);
  const many = commits.add(Array.from({ length: 12 }, (_, i) => i));
  await Promise.all([big, many]);
  t.same(sizes.slice(2), [1, 12]);
  t.same(preparedDuringWrite, [12], 'twelve waiting: prepared behind the write at once');
});
