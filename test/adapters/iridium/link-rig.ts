import { pino } from 'pino';
import { CreditBudget, type BudgetConfig } from '../../../adapters/iridium/budget.js';
import { SbdLink, type LinkOptions, type LinkState } from '../../../adapters/iridium/session.js';
import type { Clock } from '../../../core/clock.js';
import { mockRig, seeded, type Rig } from './harness.js';
import { tempDir, type Teardown } from '../../helpers/teardown.js';

/** Records every wait the policy asks for and returns almost at once: no minutes-long waits in tests. */
export function recordingClock(): Clock & { sleeps: number[] } {
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => Date.now(),
    sleep: (ms, signal) => {
      sleeps.push(ms);
      return new Promise((resolve, reject) => {
        if (signal?.aborted) return reject(signal.reason);
        const timer = setTimeout(resolve, 2);
        signal?.addEventListener(
          'abort',
          () => {
            clearTimeout(timer);
            reject(signal.reason);
          },
          { once: true },
        );
      });
    },
  };
}

export type LinkRig = Rig & { link: SbdLink; clock: ReturnType<typeof recordingClock>; budget: CreditBudget; states: LinkState[]; dir: string };

/** An `SbdLink` driving the simulated modem over the serialport mock binding, with a budget in a temp dir. */
export async function linkRig(
  t: Teardown,
  options: Partial<LinkOptions> = {},
  budgetConfig: BudgetConfig = { dailyCredits: 1000, alarmReserve: 0, historyShare: 1 },
): Promise<LinkRig> {
  const r = await mockRig(t);
  await r.modem.init();
  const dir = await tempDir(t, 'outpost-iridium-link-');
  const clock = recordingClock();
  const budget = await CreditBudget.open(dir, budgetConfig, clock, 'UTC');
  const link = new SbdLink(r.modem, budget, clock, pino({ level: 'silent' }), {
    signalRetryMs: 30_000,
    backoffInitialMs: 20_000,
    backoffMaxMs: 900_000,
    registrationWaitMs: 180_000,
    accountRetryMs: 3_600_000,
    budgetRetryMs: 600_000,
    random: seeded(1),
    ...options,
  });
  const states: LinkState[] = [];
  link.on('state', (s: LinkState) => states.push(s));
  t.teardown(() => link.stop());
  return { ...r, link, clock, budget, states, dir };
}

export async function waitFor(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 5));
  }
}
