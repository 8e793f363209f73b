/**
 * GroupCommit (storage/group-commit.ts): writers answered when their commit is durable, in
 * order; at most one commit prepared behind the one being written; flush waits for the disk.
 */
import t from 'tap';
import { GroupCommit } from '../../storage/group-commit.js';

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
