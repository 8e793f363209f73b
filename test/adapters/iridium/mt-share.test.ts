import t from 'tap';

import { CreditBudget } from '../../../adapters/iridium/budget.js';
import type { Clock } from '../../../core/clock.js';
import { linkRig, waitFor, type LinkRig } from './link-rig.js';
import { tempDir } from '../../helpers/teardown.js';

/** Waits until the modem has had no new session for `quietMs`. */
async function settle(r: LinkRig, quietMs = 300): Promise<void> {
  let n = -1;
  while (n !== r.sim.sessions.length) {
    n = r.sim.sessions.length;
    await new Promise((res) => setTimeout(res, quietMs));
  }
}

/** Resolves with the send's result, or 'timeout' (the old policy let the alarm wait for tomorrow). */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  return Promise.race([p, new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), ms))]);
}

// Issue 22: answering SBDRING / draining MT was allowed while `budget.allows(1, 'alarm')`,
// so MT queued by whoever knows the IMEI spent the alarm reserve.
t.test('a ring flood spends the MT share only: the alarm reserve stays for alarms', async (t) => {
  const r = await linkRig(t, { budgetRetryMs: 50 }, { dailyCredits: 30, alarmReserve: 3, historyShare: 1 });
  const { link, sim, budget } = r;
  let mtSeen = 0;
  link.onMt(() => void mtSeen++);
  for (let i = 0; i < 20; i++) sim.queueMt(Buffer.from(`forged ${i}`)); // each one rings
  link.start();
  await settle(r);
  // The gateway rings again and again while MT waits (ISU AT Command Reference, +SBDMTA).
  for (let i = 0; i < 4; i++) {
    sim.ring();
    await settle(r);
  }
  t.ok(budget.today <= 6, `MT fetches spent ${budget.today} credits, within the default MT share of 6`);
  t.equal(budget.mtToday, budget.today, 'all of it counted as MT spend');
  t.ok(mtSeen >= 1 && mtSeen <= 3, `${mtSeen} MT message(s) fetched before the share was spent`);
  t.ok(link.rings >= 5, `rings counted: ${link.rings}`);
  t.ok(link.ringsDeferred >= 4, `rings beyond the share counted: ${link.ringsDeferred}`);

  const alarm = await within(link.send(Buffer.alloc(60, 0xa1), 'alarm'), 3000);
  t.not(alarm, 'timeout', 'the alarm goes out');
  t.ok(
    sim.received.some((m) => m.bytes[0] === 0xa1),
    'the gateway has the alarm',
  );
  t.equal(sim.sessions.at(-1)?.command, 'AT+SBDIXA', 'its session answers the waiting ring alert');
});

t.test('a ring beyond the MT share is answered by the next MO session, not one of its own', async (t) => {
  const r = await linkRig(t, { budgetRetryMs: 50 }, { dailyCredits: 100, alarmReserve: 5, historyShare: 1, mtCreditsPerDay: 2 });
  const { link, sim, budget } = r;
  const got: string[] = [];
  link.onMt((bytes) => void got.push(bytes.toString()));
  link.start();
  await waitFor(() => link.state === 'idle');
  sim.queueMt(Buffer.from('first'));
  await waitFor(() => got.length === 1);
  await settle(r);
  t.equal(budget.mtToday, 2, 'mailbox check + one MT credit: the share is spent');
  const sessions = sim.sessions.length;
  const events: Array<[number, number]> = [];
  link.on('rings', (rings: number, deferred: number) => events.push([rings, deferred]));
  sim.queueMt(Buffer.from('second'));
  await settle(r);
  t.equal(sim.sessions.length, sessions, 'no session only to fetch it');
  t.same(events, [[2, 1]], 'the ring is counted and reported as deferred');
  t.same(got, ['first']);

  await link.send(Buffer.from('readings'), 'latest');
  await waitFor(() => got.length === 2);
  t.same(got, ['first', 'second'], 'fetched with the next MO message');
  t.equal(sim.sessions.at(-1)?.command, 'AT+SBDIXA');
  t.equal(budget.mtToday, 3, 'its credit is counted as MT spend');
  t.equal(budget.today, 4, 'MO credit + MT credits');
});

t.test('budget: the MT share is per day, outside the alarm reserve, and persisted', async (t) => {
  const dir = await tempDir(t, 'outpost-iridium-mt-budget-');
  let now = Date.UTC(2025, 2, 10, 12);
  const clock: Clock = { now: () => now, sleep: async () => undefined };
  const b = await CreditBudget.open(dir, { dailyCredits: 10, alarmReserve: 3, historyShare: 1, mtCreditsPerDay: 4 }, clock, 'UTC');
  t.ok(b.allowsMt(4));
  t.notOk(b.allowsMt(5), 'not beyond the share');
  await b.record(2, 2);
  t.ok(b.allowsMt(2));
  t.notOk(b.allowsMt(3));
  await b.record(5); // MO latest values: 7 of the 7 outside the reserve
  t.notOk(b.allowsMt(1), 'MT never reaches into the alarm reserve');
  t.ok(b.allows(3, 'alarm'), 'the reserve is intact for alarms');
  const again = await CreditBudget.open(dir, b.config, clock, 'UTC');
  t.equal(again.mtToday, 2, 'MT spend survives a restart');
  now = Date.UTC(2025, 2, 11, 0, 0, 1);
  t.equal(again.mtToday, 0, 'a new day brings a new share');
  t.ok(again.allowsMt(4));
});
