/**
 * TopicEmitter (runtime/broker/emitter.ts), the broker's topic router: bounded deliveries in
 * flight, a queue started by one loop (mqemitter recursed through it: a burst overflowed the
 * stack), listeners per topic remembered until subscriptions change, failures contained.
 */
import t from 'tap';
import { TopicEmitter, type EmittedMessage } from '../../runtime/broker/emitter.js';

const tick = () => new Promise((r) => setImmediate(r));

t.test('100,000 messages queued behind busy slots, with no listener or a synchronous one: no stack overflow, all in order', async (t) => {
  const errors: unknown[] = [];
  const mq = new TopicEmitter(10, (err) => errors.push(err));
  // Ten deliveries held open by an asynchronous listener fill every slot...
  const held: Array<() => void> = [];
  mq.on('slow/#', (_m, done) => held.push(done));
  for (let i = 0; i < 10; i++) mq.emit({ topic: 'slow/x' });
  // ...so these wait in the queue: half match no listener, half a synchronous one.
  const seen: number[] = [];
  mq.on('fast/+', (m, done) => {
    seen.push((m as EmittedMessage & { n: number }).n);
    done();
  });
  const answered: number[] = [];
  for (let n = 0; n < 100_000; n++) mq.emit({ topic: n % 2 ? 'fast/a' : 'nobody/a', n } as EmittedMessage, () => answered.push(n));
  t.equal(mq.length, 100_000, 'all queued');
  for (const done of held.splice(0)) done(); // the slots free up: the queue drains in one loop
  t.equal(answered.length, 100_000, 'every message delivered and answered');
  t.ok(
    answered.every((n, i) => n === i),
    'in order',
  );
  t.equal(seen.length, 50_000, 'the synchronous listener got its half');
  t.equal(mq.current, 0, 'every slot released');
  t.same(errors, []);
});

t.test('a listener that throws is reported and the others go on; a callback that throws still frees its slot', async (t) => {
  const errors: Array<{ err: unknown; topic: string }> = [];
  const mq = new TopicEmitter(2, (err, topic) => errors.push({ err, topic }));
  mq.on('a', () => {
    throw new Error('listener failed');
  });
  let delivered = 0;
  mq.on('a', (_m, done) => {
    delivered++;
    done();
  });
  mq.emit({ topic: 'a' });
  t.equal(delivered, 1, 'the other listener got it');
  t.match(errors, [{ err: { message: 'listener failed' }, topic: 'a' }]);
  t.throws(() =>
    mq.emit({ topic: 'b' }, () => {
      throw new Error('callback failed');
    }),
  );
  t.equal(mq.current, 1, 'only the delivery whose listener threw before answering holds a slot');
  let after = false;
  mq.emit({ topic: 'b' }, () => (after = true));
  t.ok(after, 'the emitter still delivers');
});

t.test('listeners per topic are remembered until a subscription changes', async (t) => {
  const mq = new TopicEmitter(10, () => undefined);
  const got: string[] = [];
  const listener = (m: EmittedMessage, done: () => void) => {
    got.push(m.topic);
    done();
  };
  mq.emit({ topic: 'x/1' }); // remembered: no listener
  mq.on('x/+', listener);
  mq.emit({ topic: 'x/1' });
  t.same(got, ['x/1'], 'a new subscription is seen at once');
  mq.removeListener('x/+', listener);
  await tick();
  mq.emit({ topic: 'x/1' });
  t.same(got, ['x/1'], 'a removed one is gone');
});
