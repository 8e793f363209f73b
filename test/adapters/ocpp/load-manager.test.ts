import t from 'tap';
import { LoadManager, planLoad, type LoadSession, type PhaseIndex, type PhaseTriple, type PlanInput } from '../../../adapters/ocpp/load-manager.js';
import { mulberry32 } from '../../helpers/rng.js';

const rng = mulberry32;

function session(key: string, over: Partial<LoadSession> = {}): LoadSession {
  return { key, phases: [0, 1, 2], minA: 6, maxA: 32, priority: 0, order: 0, ...over };
}

const limitOf = (plan: ReturnType<typeof planLoad>, key: string): number => plan.allocations.find((a) => a.key === key)!.limitA;

t.test('fair share among equals, capped by each session maximum', async (t) => {
  const plan = planLoad({
    siteLimitA: 32,
    meterState: 'none',
    fallbackA: 16,
    sessions: [session('a', { order: 1 }), session('b', { order: 2 }), session('c', { order: 3, maxA: 8 })],
  });
  t.equal(limitOf(plan, 'c'), 8);
  t.equal(limitOf(plan, 'a'), 12);
  t.equal(limitOf(plan, 'b'), 12);
  t.match(plan.allocations.find((a) => a.key === 'c')!.reason, /at cap 8 A/);
});

t.test('sessions that cannot get 6 A are paused, latest first', async (t) => {
  const plan = planLoad({
    siteLimitA: 32,
    meterState: 'fresh',
    otherLoadA: [18, 18, 18],
    fallbackA: 16,
    sessions: [session('a', { order: 1 }), session('b', { order: 2 }), session('c', { order: 3 })],
  });
  t.same(plan.availableA, [14, 14, 14]);
  t.equal(limitOf(plan, 'a'), 7, 'the two admitted sessions share 14 A fairly');
  t.equal(limitOf(plan, 'b'), 7);
  t.equal(limitOf(plan, 'c'), 0);
  t.match(plan.allocations.find((a) => a.key === 'c')!.reason, /paused: needs 6 A, only 2 A left on L1/);
});

t.test('priorities are served first', async (t) => {
  const plan = planLoad({
    siteLimitA: 20,
    meterState: 'none',
    fallbackA: 10,
    sessions: [session('low', { order: 1 }), session('high', { order: 2, priority: 5 })],
  });
  t.equal(limitOf(plan, 'high'), 14);
  t.equal(limitOf(plan, 'low'), 6);
});

t.test('phase-aware: single-phase chargers only use their phase', async (t) => {
  const plan = planLoad({
    siteLimitA: 16,
    meterState: 'none',
    fallbackA: 8,
    sessions: [
      session('l1a', { phases: [0], order: 1 }),
      session('l1b', { phases: [0], order: 2 }),
      session('l2', { phases: [1], order: 3 }),
      session('three', { order: 4 }),
    ],
  });
  // L1 is shared by l1a, l1b and the three-phase session: 16/3 → 5.3 < 6, so one must pause.
  t.equal(limitOf(plan, 'three'), 0);
  t.equal(limitOf(plan, 'l1a'), 8);
  t.equal(limitOf(plan, 'l1b'), 8);
  t.equal(limitOf(plan, 'l2'), 16);
  t.same(plan.allocatedA, [16, 16, 0]);
});

t.test('stale meter falls back to the safe limit', async (t) => {
  const plan = planLoad({ siteLimitA: 32, meterState: 'stale', otherLoadA: [0, 0, 0], fallbackA: 12, sessions: [session('a'), session('b', { order: 1 })] });
  t.same(plan.availableA, [12, 12, 12]);
  t.equal(limitOf(plan, 'a'), 6);
  t.equal(limitOf(plan, 'b'), 6);
  t.match(plan.reason, /stale/);
});

t.test('property: sum of limits never exceeds the site limit (random inputs)', async (t) => {
  let checked = 0;
  for (let seed = 1; seed <= 3000; seed++) {
    const r = rng(seed);
    const n = Math.floor(r() * 9);
    const sessions: LoadSession[] = [];
    for (let i = 0; i < n; i++) {
      const single = r() < 0.4;
      const phases: PhaseIndex[] = single ? [Math.floor(r() * 3) as PhaseIndex] : [0, 1, 2];
      const minA = r() < 0.8 ? 6 : 6 + Math.floor(r() * 40) / 10;
      sessions.push({
        key: `s${i}`,
        phases,
        minA,
        maxA: r() < 0.1 ? 0 : Math.round(r() * 630) / 10,
        priority: Math.floor(r() * 3),
        order: Math.floor(r() * 1000),
      });
    }
    const meterState = (['none', 'fresh', 'stale'] as const)[Math.floor(r() * 3)]!;
    const input: PlanInput = {
      siteLimitA: Math.round(r() * 1000) / 10,
      meterState,
      otherLoadA: [r() * 60 - 5, r() * 60 - 5, r() * 60 - 5],
      fallbackA: r() * 40,
      marginA: r() * 2,
      sessions,
    };
    const plan = planLoad(input);
    for (const p of [0, 1, 2] as PhaseIndex[]) {
      const sum = plan.allocations.filter((a) => a.phases.includes(p)).reduce((s, a) => s + a.limitA, 0);
      // compare in deci-amperes: limits are multiples of 0.1 A
      if (Math.round(sum * 10) > Math.floor(input.siteLimitA * 10 + 1e-9) || Math.round(sum * 10) > Math.round(plan.availableA[p] * 10)) {
        t.fail(`seed ${seed}: phase L${p + 1} sum ${sum} > limit ${input.siteLimitA} / available ${plan.availableA[p]}`);
        return;
      }
    }
    for (const a of plan.allocations) {
      const s = sessions.find((x) => x.key === a.key)!;
      if (a.limitA !== 0 && (a.limitA < s.minA - 1e-9 || a.limitA > s.maxA + 1e-9)) {
        t.fail(`seed ${seed}: ${a.key} got ${a.limitA} A outside [${s.minA}, ${s.maxA}]`);
        return;
      }
      if (Math.round(a.limitA * 10) !== a.limitA * 10) {
        t.fail(`seed ${seed}: ${a.key} limit ${a.limitA} is not a multiple of 0.1 A`);
        return;
      }
    }
    checked++;
  }
  t.equal(checked, 3000, 'all random plans respect the limit, the 6 A minimum and the 0.1 A resolution');
});

t.test('a power meter (W) with a single-phase charger: the other load on its phase is not hidden', async (t) => {
  // 20 A of other load on every phase and a single-phase charger drawing 32 A on L1: the
  // meter shows (60 + 32) A × 230 V in total.
  const applied = new Map<string, number>();
  const lm = new LoadManager(
    {
      limitA: 32,
      voltage: 230,
      sitePhases: 3,
      fallbackA: 10,
      marginA: 0,
      meter: { datapoint: 'site.power', unit: 'W', staleAfterMs: 60_000, includesChargers: true },
    },
    {
      now: () => 1000,
      // Reported at 1000 by a car that had started long before: it has followed, so the report counts.
      sessions: () => [{ ...session('l1', { phases: [0] }), drawA: [32, 0, 0] as PhaseTriple, reportedAt: 1000 }],
      apply: async (key, limitA) => void applied.set(key, limitA),
      onPlan: () => undefined,
      onError: (_key, err) => t.fail(String(err)),
    },
  );
  lm.meterReading((60 + 32) * 230, 1000);
  await lm.idle();
  t.ok(applied.get('l1')! <= 12, `L1: 20 A of other load + the charger's ${applied.get('l1')} A stays within 32 A`);
  t.ok(applied.get('l1')! >= 6, 'and the charger still charges');
});

t.test('a decrease that fails keeps the increases back (the site limit holds)', async (t) => {
  let failA = false;
  let now = 1000;
  const calls: Array<[string, number]> = [];
  // b is capped at 8 A by an operator limit, so a gets 24 A.
  let sessions = [session('a', { order: 1 }), session('b', { order: 2, maxA: 8 })];
  const lm = new LoadManager(
    { limitA: 32, voltage: 230, sitePhases: 3, fallbackA: 10, marginA: 0, control: { rampStepA: 32 } },
    {
      now: () => now,
      sessions: () => sessions.map((s) => ({ ...s, drawA: [0, 0, 0] as PhaseTriple })),
      apply: async (key, limitA) => {
        calls.push([key, limitA]);
        if (key === 'a' && failA) throw new Error('charger a did not answer');
      },
      onPlan: () => undefined,
      onError: () => undefined,
    },
  );
  // Without reports, a change counts as followed after settleTimeoutMs (30 s).
  const waitOut = async (): Promise<void> => {
    for (let i = 0; i < 40; i++) {
      now += 1000;
      lm.tick();
      await lm.idle();
    }
  };
  lm.replan('start');
  await lm.idle();
  t.same([lm.appliedLimit('a'), lm.appliedLimit('b')], [6, 6], 'new sessions start at the minimum');
  await waitOut();
  t.same([lm.appliedLimit('a'), lm.appliedLimit('b')], [24, 8], 'then rise once the cars had time to follow');
  // The operator lifts b's cap: a must drop to 16 before b may rise to 16; a does not answer.
  failA = true;
  calls.length = 0;
  sessions = [session('a', { order: 1 }), session('b', { order: 2 })];
  lm.replan('b uncapped');
  await lm.idle();
  await waitOut();
  t.ok(calls.length > 0 && calls.every(([key, limitA]) => key === 'a' && limitA === 16), 'only the decrease was tried, again at each round; b was not raised');
  t.same([lm.appliedLimit('a'), lm.appliedLimit('b')], [24, 8], 'a is still known to hold 24 A, b stays at 8 A');
  // a answers again: the next round lowers a; b rises once a has followed.
  failA = false;
  calls.length = 0;
  lm.replan('retry');
  await lm.idle();
  t.same(calls, [['a', 16]], 'the decrease at once');
  await waitOut();
  t.same(
    calls,
    [
      ['a', 16],
      ['b', 16],
    ],
    'the increase once a followed',
  );
});
