import t from 'tap';
import type { Batch } from '../../runtime/sync/link.js';
import { ByteBucket } from '../../runtime/sync/pacing.js';
import type { Clock } from '../../core/clock.js';
import { startTestGateway, eventually } from '../helpers/gateway.js';
import { sensors, startSync, writeReadings } from './helpers/sync.js';
import { UpLink } from './helpers/fake-link.js';

const T0 = Date.UTC(2025, 0, 1);
const fast = { pollMs: 20, backoff: { initialMs: 50, maxMs: 200 }, datapointsIntervalMs: 0, live: { enabled: false } };

/** A primary link that holds every send until the test releases it, and reports a fixed size per send. */
class HeldLink extends UpLink {
  readonly sent: Batch[] = [];
  readonly pending: Array<() => void> = [];
  maxPending = 0;
  constructor(
    name: string,
    bytesPerSend: number,
    private readonly hold: boolean,
  ) {
    super(name, bytesPerSend);
  }
  override async stop(): Promise<void> {
    for (const release of this.pending.splice(0)) release();
  }
  override send(batch: Batch): Promise<number> {
    this.sent.push(batch);
    if (!this.hold) return Promise.resolve(this.bytesPerSend);
    return new Promise((resolve) => {
      this.pending.push(() => resolve(this.bytesPerSend));
      this.maxPending = Math.max(this.maxPending, this.pending.length);
    });
  }
}

t.test('the in-flight window bounds unacknowledged batches per link', async (t) => {
  const gw = await startTestGateway(t, { datapoints: sensors(['w.x']), storage: { sync: false } });
  await writeReadings(gw, ['w.x'], 1000, T0);
  const link = new HeldLink('held', 100, true);
  const { sync } = await startSync(
    t,
    gw,
    { ...fast, links: [{ name: 'held', type: 'custom', role: 'primary', batchRecords: 100, window: 3 }] },
    { customLinks: new Map([['held', link]]) },
  );
  await eventually(() => link.pending.length === 3);
  await new Promise((r) => setTimeout(r, 200));
  t.equal(link.sent.length, 3, 'no fourth batch while three await their acknowledgement');
  // Acknowledge one: exactly one more goes out.
  link.pending.shift()!();
  await eventually(() => link.sent.length === 4);
  await new Promise((r) => setTimeout(r, 100));
  t.equal(link.maxPending, 3, 'never more than the window in flight');
  while (link.sent.length < 10 || link.pending.length > 0) {
    link.pending.shift()?.();
    await new Promise((r) => setTimeout(r, 5));
  }
  await eventually(async () => (await sync.snapshot()).acked === 1000);
  t.equal(link.maxPending, 3);
});

t.test('the bandwidth cap spaces sends to maxBytesPerSecond', async (t) => {
  const gw = await startTestGateway(t, { datapoints: sensors(['b.x']), storage: { sync: false } });
  await writeReadings(gw, ['b.x'], 600, T0);
  // 6 batches of 2,000 bytes each under a 4,000 B/s cap: the first 4,000 bytes are the bucket's
  // initial allowance, the other 8,000 take at least 2 s.
  const link = new HeldLink('capped', 2000, false);
  const started = Date.now();
  const { sync } = await startSync(
    t,
    gw,
    { ...fast, links: [{ name: 'capped', type: 'custom', role: 'primary', batchRecords: 100, window: 1, maxBytesPerSecond: 4000 }] },
    { customLinks: new Map([['capped', link]]) },
  );
  await eventually(async () => (await sync.snapshot()).acked === 600, 20_000);
  const elapsed = Date.now() - started;
  t.equal(link.sent.length, 6);
  t.ok(elapsed >= 1500, `6 × 2,000 B at 4,000 B/s took ${elapsed} ms (at least ~2 s after the initial allowance)`);
});

t.test('ByteBucket: debt is paid back at the configured rate; 0 means no cap', async (t) => {
  let now = 0;
  const sleeps: number[] = [];
  const clock: Clock = {
    now: () => now,
    sleep: async (ms) => {
      sleeps.push(ms);
      now += ms;
    },
  };
  const bucket = new ByteBucket(1000, clock);
  await bucket.ready();
  t.same(sleeps, [], 'a full bucket does not wait');
  bucket.charge(10_000);
  await bucket.ready();
  t.same(sleeps, [9000], '10 kB against a 1 kB allowance at 1 kB/s: 9 s');
  bucket.charge(500);
  now += 250;
  await bucket.ready();
  t.same(sleeps.slice(1), [250], 'partly refilled: waits only for the rest of the debt');
  const none = new ByteBucket(0, clock);
  none.charge(1e9);
  await none.ready();
  t.equal(sleeps.length, 2, 'no cap: never waits');
});
