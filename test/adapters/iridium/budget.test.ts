import t from 'tap';

import { CreditBudget } from '../../../adapters/iridium/budget.js';
import type { Clock } from '../../../core/clock.js';
import { tempDir } from '../../helpers/teardown.js';

function fakeClock(start: number): Clock & { set(ms: number): void } {
  let now = start;
  return { now: () => now, sleep: async () => undefined, set: (ms) => (now = ms) };
}

t.test('priorities share the daily budget: alarms may use the reserve, history only its share', async (t) => {
  const dir = await tempDir(t, 'outpost-iridium-budget-');
  const clock = fakeClock(Date.UTC(2025, 2, 10, 12));
  const b = await CreditBudget.open(dir, { dailyCredits: 20, alarmReserve: 5, historyShare: 0.6 }, clock, 'UTC');
  t.ok(b.allows(9, 'history'), 'history up to (20-5)*0.6 = 9');
  t.notOk(b.allows(10, 'history'));
  t.ok(b.allows(15, 'latest'));
  t.notOk(b.allows(16, 'latest'));
  t.ok(b.allows(20, 'alarm'));
  t.notOk(b.allows(21, 'alarm'));
  await b.record(14);
  t.notOk(b.allows(1, 'history'));
  t.ok(b.allows(1, 'latest'));
  t.ok(b.allows(6, 'alarm'));

  const again = await CreditBudget.open(dir, b.config, clock, 'UTC');
  t.equal(again.today, 14, 'spend survives a restart');
  t.equal(again.month, 14);
  clock.set(Date.UTC(2025, 2, 11, 0, 0, 1));
  t.equal(again.today, 0, 'a new day starts at 0');
  t.equal(again.month, 14, 'the month goes on');
  await again.record(3);
  clock.set(Date.UTC(2025, 3, 1, 0, 0, 1));
  t.equal(again.month, 0, 'a new month starts at 0');
});

t.test('the monthly cap applies to every priority and days follow the gateway timezone', async (t) => {
  const dir = await tempDir(t, 'outpost-iridium-budget-');
  // 23:30 UTC on the 10th is already the 11th in Auckland.
  const clock = fakeClock(Date.UTC(2025, 2, 10, 23, 30));
  const b = await CreditBudget.open(dir, { dailyCredits: 100, monthlyCredits: 10, alarmReserve: 0, historyShare: 1 }, clock, 'Pacific/Auckland');
  await b.record(8);
  t.notOk(b.allows(3, 'alarm'), 'monthly cap');
  t.ok(b.allows(2, 'alarm'));
  clock.set(Date.UTC(2025, 2, 11, 10, 0)); // still the 11th in Auckland
  t.equal(b.today, 8, 'same local day');
  clock.set(Date.UTC(2025, 2, 11, 11, 30)); // 00:30 on the 12th in Auckland (NZDT, UTC+13)
  t.equal(b.today, 0, 'local midnight rolled the day');
});
