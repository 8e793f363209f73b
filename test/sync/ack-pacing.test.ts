import t from 'tap';
import type { Batch } from '../../runtime/sync/link.js';
import { AckWindow } from '../../runtime/sync/ack-window.js';
import { OutpostError } from '../../core/errors.js';
import { startTestGateway } from '../helpers/gateway.js';
import { sensors, startSync, writeReadings } from './helpers/sync.js';
import { UpLink } from './helpers/fake-link.js';

const T0 = Date.UTC(2025, 0, 1);

/** A primary link whose upstream acknowledges every batch at once, reporting a fixed size. */
class InstantLink extends UpLink {
  /** Records acknowledged by the upstream (what a receiver has). */
  delivered = 0;
  override async send(batch: Batch): Promise<number> {
    this.delivered = Math.max(this.delivered, batch.last);
    return this.bytesPerSend;
  }
}

t.test('under a bandwidth cap the cursor follows the acknowledgements, not the window', async (t) => {
  const gw = await startTestGateway(t, { datapoints: sensors(['c.x']), storage: { sync: false } });
  await writeReadings(gw, ['c.x'], 5000, T0);
  // 1,000 B per batch of 100 at 4,000 B/s: 4 batches a second; a window of 16 takes 4 s to fill.
  const link = new InstantLink('capped', 1000);
  const { sync } = await startSync(
    t,
    gw,
    {
      pollMs: 20,
      datapointsIntervalMs: 0,
      live: { enabled: false },
      links: [{ name: 'capped', type: 'custom', role: 'primary', batchRecords: 100, window: 16, maxBytesPerSecond: 4000 }],
    },
    { customLinks: new Map([['capped', link]]) },
  );
  let worstLag = 0;
  const started = Date.now();
  while (Date.now() - started < 3000) {
    const s = await sync.snapshot();
    worstLag = Math.max(worstLag, link.delivered - s.acked);
    await new Promise((r) => setTimeout(r, 25));
  }
  const snap = await sync.snapshot();
  t.ok(link.delivered >= 800, `the cap let ${link.delivered} records through in 3 s`);
  t.ok(worstLag <= 200, `acknowledged records waited for the cursor at most ${worstLag} records (one window: 1,600)`);
  t.ok(snap.acked >= link.delivered - 200, `cursor ${snap.acked} of ${link.delivered} delivered`);
  t.ok(snap.drainRate > 0, `drain rate ${snap.drainRate.toFixed(0)} records/s while sending`);
  t.not(snap.catchUpSeconds, null, 'converging');
});

t.test('AckWindow: a contiguous prefix of acknowledgements, whatever order they come in', async (t) => {
  const acked: number[] = [];
  let failures = 0;
  const w = new AckWindow(
    (b) => acked.push(b.last),
    () => failures++,
  );
  const batch = (first: number, last: number): Batch => ({ key: `k${first}`, gatewayId: 'g', first, last, records: [], lane: 'history' });
  const settle: Array<{ ok: (n: number) => void; fail: (e: unknown) => void }> = [];
  for (let i = 0; i < 4; i++) {
    w.add(batch(i * 10 + 1, i * 10 + 10), new Promise<number>((ok, fail) => settle.push({ ok, fail })));
  }
  settle[1]!.ok(1);
  await new Promise((r) => setImmediate(r));
  t.same(acked, [], 'the second acknowledged first: the cursor waits for the first');
  settle[0]!.ok(1);
  await new Promise((r) => setImmediate(r));
  t.same(acked, [10, 20], 'then both at once');
  settle[3]!.ok(1);
  settle[2]!.fail(new OutpostError('SYNC_LINK_DOWN'));
  await new Promise((r) => setImmediate(r));
  t.same(acked, [10, 20], 'nothing behind a failure');
  t.equal(failures, 1);
  t.match(w.failure, { batch: { first: 21 }, err: { code: 'SYNC_LINK_DOWN' } });
  t.match(await w.settleBeforeFailure(), { atHead: true, batch: { first: 21 } });
});
