import t from 'tap';
import { mapLimit } from '../../core/map-limit.js';

t.test('mapLimit: results in order, never more than the limit in flight, the first failure rejects', async (t) => {
  let running = 0;
  let most = 0;
  const items = Array.from({ length: 25 }, (_, i) => i);
  const out = await mapLimit(items, 4, async (n, i) => {
    running++;
    most = Math.max(most, running);
    // Later items finish first: the order of the results must not follow completion.
    await new Promise((r) => setTimeout(r, (25 - n) % 7));
    running--;
    return `${n}:${i}`;
  });
  t.same(
    out,
    items.map((n) => `${n}:${n}`),
    'in the order of the items',
  );
  t.equal(most, 4, 'four in flight at most, and four used');
  t.same(await mapLimit([], 4, async () => 1), [], 'nothing to do');

  let started = 0;
  let settledBeforeReject = 0;
  const failure = await mapLimit(items, 3, async (n) => {
    started++;
    await new Promise((r) => setTimeout(r, 2));
    if (n === 5) throw new Error('item 5 failed');
    settledBeforeReject++;
    return n;
  }).catch((err: Error) => err);
  t.match(failure, { message: 'item 5 failed' });
  t.ok(started < items.length, `no new item starts after the failure (${started} of ${items.length} started)`);
  t.equal(settledBeforeReject, started - 1, 'the calls already started settled before the rejection');
});
