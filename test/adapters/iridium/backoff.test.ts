import t from 'tap';
import { linkRig } from './link-rig.js';

// Issue 22: the randomised backoff was base × [0.5, 1.5), so at the cap a retry waited up
// to 1.5 × backoffMaxMs. The jitter now stays within the configured maximum.
t.test('retry jitter never exceeds backoffMaxMs, even with the largest random draw', async (t) => {
  const { link, sim, clock } = await linkRig(t, { backoffInitialMs: 20_000, backoffMaxMs: 60_000, random: () => 0.999_999 });
  // Eight retryable failures (no network, RF drop, gateway timeouts), then success.
  sim.scriptedMoStatus.push(32, 18, 17, 10, 32, 18, 17, 10, 0);
  link.start();
  await link.send(Buffer.from('x'), 'latest');
  t.equal(clock.sleeps.length, 8, 'one wait per failure');
  for (const [i, ms] of clock.sleeps.entries()) t.ok(ms <= 60_000, `wait ${i + 1}: ${ms} ms ≤ 60000`);
  t.ok(
    clock.sleeps.slice(2).every((ms) => ms >= 30_000),
    'at the cap, waits stay above half of it (still randomised, not zero)',
  );
});

t.test('the smallest random draw waits half the step, so sites still spread out', async (t) => {
  const { link, sim, clock } = await linkRig(t, { backoffInitialMs: 20_000, backoffMaxMs: 60_000, random: () => 0 });
  sim.scriptedMoStatus.push(32, 32, 32, 0);
  link.start();
  await link.send(Buffer.from('x'), 'latest');
  t.same(clock.sleeps, [10_000, 20_000, 30_000]);
});
