/**
 * The rules of the load management loop one at a time (adapters/ocpp/load-manager.ts,
 * load-estimate.ts): the other-load estimate from quantities measured together, staleness by
 * arrival, increases after the cars followed, pause hysteresis.
 */
import t from 'tap';
import { LoadManager, type LoadSessionInput, type PhaseTriple } from '../../../adapters/ocpp/load-manager.js';
import { OtherLoadEstimator, drawBounds } from '../../../adapters/ocpp/load-estimate.js';

t.test('estimate: a car ramping to a new limit proves nothing; a settled site gives the exact other load', async (t) => {
  const est = new OtherLoadEstimator();
  // Settled: other 4.3 A + a car at 20 A.
  let b = drawBounds([{ phases: [0], reportA: [20, 0, 0], limitA: 20, maxA: 32, settled: true }]);
  t.same(
    est.update([24.3], [b.lo[0]], [b.hi[0]]).map((x) => Math.round(x * 10) / 10),
    [4.3],
    'exact when settled',
  );
  // Raised to 26 A, the car ramps; its report still says 20 A. The meter reads 27.3, 30.3.
  b = drawBounds([{ phases: [0], reportA: [20, 0, 0], limitA: 26, maxA: 32, settled: false }]);
  t.same([b.lo[0], b.hi[0]], [20, 26], 'in flight: between the report and the new limit');
  for (const m of [27.3, 30.3])
    t.same(
      est.update([m], [b.lo[0]], [b.hi[0]]).map((x) => Math.round(x * 10) / 10),
      [4.3],
      `meter ${m} A during the ramp: still 4.3 A (the old controller read ${(m - 20).toFixed(1)} A)`,
    );
  // Other load really rises by 10 A while the car is in flight: proven, taken conservatively.
  t.same(
    est.update([40.3], [b.lo[0]], [b.hi[0]]).map((x) => Math.round(x * 10) / 10),
    [20.3],
    'a proven rise jumps to the upper bound',
  );
  // Settled again at 26 A: exact.
  b = drawBounds([{ phases: [0], reportA: [26, 0, 0], limitA: 26, maxA: 32, settled: true }]);
  t.same(
    est.update([40.3], [b.lo[0]], [b.hi[0]]).map((x) => Math.round(x * 10) / 10),
    [14.3],
    'back to exact once the car settled',
  );
});

interface Rig {
  lm: LoadManager;
  applied: Map<string, number>;
  clock: { now: number };
  sessions: LoadSessionInput[];
  advance(ms: number): Promise<void>;
}

function rig(config: Partial<ConstructorParameters<typeof LoadManager>[0]> = {}): Rig {
  const clock = { now: Date.UTC(2026, 0, 1) };
  const applied = new Map<string, number>();
  const r: Rig = {
    clock,
    applied,
    sessions: [],
    lm: undefined as unknown as LoadManager,
    async advance(ms) {
      for (let i = 0; i < ms / 500; i++) {
        clock.now += 500;
        r.lm.tick();
        await r.lm.idle();
      }
    },
  };
  r.lm = new LoadManager(
    {
      limitA: 32,
      voltage: 230,
      sitePhases: 3,
      fallbackA: 16,
      marginA: 0,
      meter: { datapoint: 'm', unit: 'A', staleAfterMs: 10_000, includesChargers: true },
      ...config,
    },
    {
      now: () => clock.now,
      sessions: () => r.sessions,
      apply: async (key, limitA) => void applied.set(key, limitA),
      onPlan: () => undefined,
      onError: (key, err) => t.fail(`${key}: ${String(err)}`),
    },
  );
  return r;
}

const car = (key: string, drawA: number, reportedAt: number, over: Partial<LoadSessionInput> = {}): LoadSessionInput => ({
  key,
  phases: [0, 1, 2],
  minA: 6,
  maxA: 32,
  priority: 0,
  order: 1,
  drawA: [drawA, drawA, drawA] as PhaseTriple,
  reportedAt,
  startedAt: reportedAt - 60_000,
  ...over,
});

t.test('staleness by arrival: a reading stamped an hour ahead does not keep the meter fresh', async (t) => {
  const r = rig();
  r.sessions = [car('a/1', 0, r.clock.now)];
  // The adapter passes no timestamp of the meter's: arrival is now.
  r.lm.meterReading(10);
  await r.lm.idle();
  t.equal(r.lm.meterState(), 'fresh');
  await r.advance(11_000);
  t.equal(r.lm.meterState(), 'stale', 'stale staleAfterMs after the last reading arrived');
  t.same(r.lm.lastPlan!.availableA, [16, 16, 16], 'the fallback is in force');
});

t.test('decreases at once; increases only after the car followed and the hold time passed', async (t) => {
  const r = rig({ control: { followMs: 5000, increaseHoldMs: 10_000, rampStepA: 32 } });
  const t0 = r.clock.now;
  r.sessions = [car('a/1', 20, t0)];
  r.lm.meterReading(24); // other 4 A
  await r.lm.idle();
  t.equal(r.applied.get('a/1'), 6, 'a session seen for the first time gets no more than the minimum at once');
  await r.advance(1000);
  t.equal(r.applied.get('a/1'), 6, 'no increase before a report shows the car followed');
  // The car's report, 6 s after the change: it follows 6 A.
  r.clock.now += 5000;
  r.sessions = [car('a/1', 6, r.clock.now)];
  r.lm.meterReading(10);
  await r.lm.idle();
  t.equal(r.applied.get('a/1'), 28, 'raised to the plan once the car followed (32 − 4 A other load)');
  // Other load jumps by 10 A: the decrease goes out on that very reading.
  r.clock.now += 6000;
  r.sessions = [car('a/1', 28, r.clock.now)];
  r.lm.meterReading(42);
  await r.lm.idle();
  t.equal(r.applied.get('a/1'), 18, 'decreased at once');
  // It drops again to 4 A other load: the increase waits for the report and the hold time.
  r.clock.now += 6000;
  r.sessions = [car('a/1', 18, r.clock.now)];
  r.lm.meterReading(22);
  await r.lm.idle();
  t.equal(r.applied.get('a/1'), 18, 'no increase within increaseHoldMs of the decrease');
  t.match(r.lm.lastPlan!.allocations[0]!.reason, /after the last decrease/, 'the plan says what it waits for');
  await r.advance(5000);
  r.lm.meterReading(22);
  await r.lm.idle();
  t.equal(r.applied.get('a/1'), 28, 'raised after the hold');
});

t.test('pause hysteresis: minimum pause time, and a resume needs the minimum plus the margin', async (t) => {
  const r = rig({ control: { followMs: 1000, increaseHoldMs: 0, minPauseMs: 60_000, resumeMarginA: 1, rampStepA: 32 } });
  const report = (a: number, b: number): void => {
    r.sessions = [car('a/1', a, r.clock.now, { order: 1 }), car('b/1', b, r.clock.now, { order: 2 })];
  };
  report(6, 6);
  r.lm.meterReading(12 + 4); // two cars at 6 A, other 4 A
  await r.lm.idle();
  await r.advance(2000);
  report(6, 6);
  r.lm.meterReading(16);
  await r.lm.idle();
  t.same([r.applied.get('a/1'), r.applied.get('b/1')], [14, 14], 'both share 28 A');
  // Other load to 21 A: 11 A left, only one car fits.
  r.clock.now += 2000;
  report(14, 14);
  r.lm.meterReading(28 + 21);
  await r.lm.idle();
  t.same([r.applied.get('a/1'), r.applied.get('b/1')], [11, 0], 'the later session pauses');
  // Other load back to 19.5 A: 12.5 A = two minimums + 0.5 A, less than the resume margin needs.
  for (let i = 0; i < 70; i++) {
    r.clock.now += 1000;
    report(11, 0);
    r.lm.meterReading(11 + 19.5);
    await r.lm.idle();
  }
  t.equal(r.applied.get('b/1'), 0, 'still paused: 6 A + 1 A margin do not fit in what a leaves');
  // Other load down to 14 A: 18 A left; b resumes, but only once its minimum pause is over.
  r.clock.now += 1000;
  report(12.5, 0);
  r.lm.meterReading(12.5 + 14);
  await r.lm.idle();
  t.ok(r.applied.get('b/1')! >= 6, 'resumed when the margin fits and the pause was long enough');
});
