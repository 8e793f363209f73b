/**
 * Issue 24 item 4: charge modes (adapters/ocpp/charge-modes.ts) as a pure function with a fake
 * clock (hysteresis, delays, sharing the surplus), then inside the load manager (the breaker
 * limit wins over every mode; an operator's mode change is not held by the minimum pause), then
 * in simulated site physics (site-physics.ts: cars following in ~1.5 s, MeterValues every 10 s,
 * PV that steps) where pv mode follows the surplus, pauses when it goes and never exceeds the limit.
 */
import t from 'tap';
import { DEFAULT_PV, modeCaps, type ModeSession, type PvState, type Surplus } from '../../../adapters/ocpp/charge-modes.js';
import { LoadManager, type LoadPlan, type LoadSessionInput } from '../../../adapters/ocpp/load-manager.js';
import { runScenario, type ControllerHooks, type SiteSample } from '../../../adapters/ocpp/site-physics.js';

const V = 230;
const session = (key: string, over: Partial<ModeSession> = {}): ModeSession => ({
  key,
  mode: 'pv',
  phaseCount: 3,
  minA: 6,
  maxA: 32,
  priority: 0,
  order: 0,
  ...over,
});
const measured = (watts: number): Surplus => ({ kind: 'measured', watts });

/** A pv session stepped through rounds with a fake clock: returns the cap of each round. */
function pvRounds(rounds: Array<{ at: number; surplus: Surplus }>, s: ModeSession = session('a')) {
  let states = new Map<string, PvState>();
  return rounds.map(({ at, surplus }) => {
    const out = modeCaps({ sessions: [s], surplus, voltage: V, pv: DEFAULT_PV, now: at, states });
    states = out.states;
    return out.caps.get(s.key)!;
  });
}

t.test('off, now and minpv', async (t) => {
  const out = modeCaps({
    sessions: [session('off', { mode: 'off' }), session('now', { mode: 'now' }), session('minpv', { mode: 'minpv', order: 1 })],
    surplus: measured(2000),
    voltage: V,
    pv: DEFAULT_PV,
    now: 0,
    states: new Map(),
  });
  t.same(out.caps.get('off'), { capA: 0, reason: 'charge mode off' });
  t.same(out.caps.get('now'), { capA: undefined }, 'now: no cap from the mode');
  t.equal(out.caps.get('minpv')!.capA, 6, '2 kW on three phases is 2 A: the minimum 6 A applies');
  const more = modeCaps({ sessions: [session('m', { mode: 'minpv' })], surplus: measured(10_000), voltage: V, pv: DEFAULT_PV, now: 0, states: new Map() });
  t.equal(more.caps.get('m')!.capA, 14, '10 kW / (230 V × 3) = 14.5 A, whole amperes down');
  t.match(more.caps.get('m')!.reason, /min\+PV: surplus 10\.0 kW → 14 A/);
  const capped = modeCaps({
    sessions: [session('m', { mode: 'minpv', maxA: 16 })],
    surplus: measured(20_000),
    voltage: V,
    pv: DEFAULT_PV,
    now: 0,
    states: new Map(),
  });
  t.equal(capped.caps.get('m')!.capA, 16, 'never above the session maximum');
  const none = modeCaps({
    sessions: [session('m', { mode: 'minpv' })],
    surplus: { kind: 'none', reason: 'no site meter' },
    voltage: V,
    pv: DEFAULT_PV,
    now: 0,
    states: new Map(),
  });
  t.same(none.caps.get('m'), { capA: 6, reason: 'min+PV: minimum 6 A (no surplus measurement: no site meter)' });
  const onePhase = modeCaps({
    sessions: [session('m', { mode: 'minpv', phaseCount: 1 })],
    surplus: measured(2000),
    voltage: V,
    pv: DEFAULT_PV,
    now: 0,
    states: new Map(),
  });
  t.equal(onePhase.caps.get('m')!.capA, 8, 'a single-phase session gets 2 kW / 230 V = 8 A');
});

t.test('pv: pauses after disableDelayS below the minimum, resumes after enableDelayS above min + margin', async (t) => {
  const s = 1000;
  const caps = pvRounds([
    { at: 0, surplus: measured(5000) }, // 7 A ≥ 6 + 1: a new pv session charges at once
    { at: 10 * s, surplus: measured(3000) }, // 4 A < 6: keeps 6 A, the disable delay starts
    { at: 189 * s, surplus: measured(3000) }, // 179 s below
    { at: 190 * s, surplus: measured(3000) }, // 180 s below: paused
    { at: 200 * s, surplus: measured(4500) }, // 6 A: not min + margin, stays paused
    { at: 210 * s, surplus: measured(5000) }, // 7 A: the enable delay starts
    { at: 240 * s, surplus: measured(4000) }, // back below after 30 s: the delay starts over
    { at: 250 * s, surplus: measured(5000) },
    { at: 309 * s, surplus: measured(5000) }, // 59 s above
    { at: 310 * s, surplus: measured(5000) }, // 60 s above: resumes
    { at: 320 * s, surplus: measured(9000) }, // 13 A
  ]);
  t.same(
    caps.map((c) => c.capA),
    [7, 6, 6, 0, 0, 0, 0, 0, 0, 7, 13],
  );
  t.match(caps[1]!.reason, /below the minimum 6 A; keeps 6 A, pauses in 180 s/);
  t.match(caps[2]!.reason, /pauses in 1 s/);
  t.match(caps[3]!.reason, /below the minimum 6 A for 180 s/);
  t.match(caps[4]!.reason, /below 7 A \(minimum \+ margin\)/);
  t.match(caps[5]!.reason, /resumes in 60 s/);
  t.match(caps[8]!.reason, /resumes in 1 s/);
  t.match(caps[9]!.reason, /resumed after 60 s above 7 A/);
});

t.test('pv: a new session without surplus waits; no meter pauses at once; a stale meter counts as no surplus through the delay', async (t) => {
  t.same(
    pvRounds([{ at: 0, surplus: measured(500) }]).map((c) => c.capA),
    [0],
    'a new pv session with 0 A of surplus is paused',
  );
  t.same(pvRounds([{ at: 0, surplus: { kind: 'none', reason: 'no site meter' } }])[0], { capA: 0, reason: 'PV: no surplus measurement (no site meter)' });
  const stale: Surplus = { kind: 'unknown', reason: 'site meter stale' };
  const caps = pvRounds([
    { at: 0, surplus: measured(6000) },
    { at: 1000, surplus: stale },
    { at: 181_000, surplus: stale },
  ]);
  t.same(
    caps.map((c) => c.capA),
    [8, 6, 0],
    'a stale meter: the minimum for the disable delay, then paused',
  );
});

t.test('several pv sessions take the surplus in priority, then arrival order', async (t) => {
  const sessions = [session('late', { order: 2 }), session('early', { order: 1, maxA: 16 }), session('vip', { order: 3, priority: 1, maxA: 8 })];
  const out = modeCaps({ sessions, surplus: measured(20_000), voltage: V, pv: DEFAULT_PV, now: 0, states: new Map() });
  // 20 kW = 28 A on three phases: vip 8 A, early 16 A, late the 4 A left (below 6 + 1: waits).
  t.same(
    ['vip', 'early', 'late'].map((k) => out.caps.get(k)!.capA),
    [8, 16, 0],
  );
});

// ---------------------------------------------------------------- inside the load manager

function manager(limitA: number, sessions: () => LoadSessionInput[], clock: { now: number }) {
  const applied = new Map<string, number>();
  const switches: Array<{ key: string; paused: boolean; reason: string }> = [];
  const plans: LoadPlan[] = [];
  const lm = new LoadManager(
    {
      limitA,
      voltage: V,
      sitePhases: 3,
      fallbackA: limitA / 2,
      marginA: 1,
      meter: { datapoint: 'site.grid.power', unit: 'W', staleAfterMs: 30_000, includesChargers: true },
      control: { minPauseMs: 120_000 },
    },
    {
      now: () => clock.now,
      sessions,
      apply: async (key, limitA) => {
        applied.set(key, limitA);
      },
      onPlan: (plan) => plans.push(plan as LoadPlan),
      onError: (key, err) => t.fail(`${key}: ${String(err)}`),
      onSwitch: (key, paused, reason) => switches.push({ key, paused, reason }),
    },
  );
  return { lm, applied, switches, plans };
}

const input = (key: string, over: Partial<LoadSessionInput> = {}): LoadSessionInput => ({
  key,
  phases: [0, 1, 2],
  minA: 6,
  maxA: 32,
  priority: 0,
  order: 0,
  drawA: [0, 0, 0],
  ...over,
});

t.test('the breaker limit wins over every mode', async (t) => {
  const clock = { now: Date.UTC(2026, 5, 1, 12) };
  // 20 kW exported: plenty of surplus, but the site may take only 16 A per phase.
  const sessions = [input('cp1/1', { mode: 'pv', order: 1 }), input('cp2/1', { mode: 'minpv', order: 2 }), input('cp3/1', { mode: 'now', order: 3 })];
  const { lm, applied, plans } = manager(16, () => sessions, clock);
  lm.meterReading(-20_000);
  await lm.idle();
  const plan = plans.at(-1)!;
  t.match(plan.surplus, { kind: 'measured' });
  t.ok(
    plan.allocatedA.every((a) => a <= 15),
    `allocated ${plan.allocatedA.join('/')} A ≤ 16 A − 1 A margin`,
  );
  const total = [...applied.values()].reduce((a, b) => a + b, 0);
  t.ok(total <= 15, `the limits sent add up to ${total} A ≤ 15 A`);
  t.same(
    plan.allocations.map((a) => a.mode),
    ['pv', 'minpv', 'now'],
    'each allocation names its mode',
  );

  // Other load fills the site: the minpv session's minimum does not fit, so it is paused whatever its mode says.
  const heavy = [input('cp2/1', { mode: 'minpv', order: 2 }), input('cp3/1', { mode: 'now', order: 1 })];
  const site = manager(16, () => heavy, clock);
  site.lm.meterReading(8 * 3 * V); // 8 A per phase of other load (nothing drawn by the cars yet)
  await site.lm.idle();
  const byKey = new Map(site.plans.at(-1)!.allocations.map((a) => [a.key, a]));
  t.equal(byKey.get('cp3/1')!.limitA, 6, 'the earlier session (now) keeps the minimum');
  t.equal(byKey.get('cp2/1')!.limitA, 0, 'minpv is paused: 16 − 8 − 1 − 6 leaves 1 A');
  t.match(byKey.get('cp2/1')!.reason, /paused: needs 6 A/);
});

t.test('off pauses at once, with an event; an operator switching back is not held by the minimum pause', async (t) => {
  const clock = { now: Date.UTC(2026, 5, 1, 12) };
  const s = input('cp1/1', { mode: 'now', startedAt: clock.now - 60_000, reportedAt: clock.now - 1000, drawA: [6, 6, 6] });
  const { lm, applied, switches, plans } = manager(32, () => [s], clock);
  lm.meterReading(6 * 3 * V + 1000);
  await lm.idle();
  t.equal(applied.get('cp1/1'), 6, 'a first limit goes out at the minimum');
  s.mode = 'off';
  lm.modeChanged('cp1/1', 'charge mode now → off');
  await lm.idle();
  t.equal(applied.get('cp1/1'), 0, 'off: 0 A at once (a decrease)');
  t.match(plans.at(-1)!.allocations[0]!.reason, 'paused: charge mode off');
  t.match(switches, [{ key: 'cp1/1', paused: true, reason: /charge mode off/ }], 'the pause is reported (for the event log)');
  clock.now += 5000;
  s.mode = 'now';
  s.drawA = [0, 0, 0];
  s.reportedAt = clock.now;
  lm.modeChanged('cp1/1', 'charge mode off → now');
  await lm.idle();
  t.match(plans.at(-1)!.allocations[0]!.reason, /after the last decrease/, 'the increase hold after a decrease (10 s) still applies');
  t.notMatch(plans.at(-1)!.allocations[0]!.reason, /minimum pause/, 'the 2-minute minimum pause does not');
  clock.now += 6000;
  lm.tick();
  await lm.idle();
  t.ok(applied.get('cp1/1')! >= 6, `resumed 11 s after the pause (${applied.get('cp1/1')} A), not after the 2-minute minimum pause`);
  t.match(switches.at(-1), { key: 'cp1/1', paused: false });
});

// ---------------------------------------------------------------- simulated site physics

t.test('pv mode in site physics: follows the surplus, pauses when it goes, resumes, never above the limit', async (t) => {
  const LIMIT = 32;
  const pv = { enableDelayS: 60, disableDelayS: 180, enableMarginA: 1 };
  const controller = (h: ControllerHooks) => {
    const lm = new LoadManager(
      {
        limitA: LIMIT,
        voltage: V,
        sitePhases: 3,
        fallbackA: 16,
        marginA: 1,
        meter: { datapoint: 'site.grid.power', unit: 'W', staleAfterMs: 30_000, includesChargers: true },
        pv,
      },
      { now: h.now, sessions: h.sessions, apply: h.apply, onPlan: () => undefined, onError: (key, err) => t.fail(`${key}: ${String(err)}`) },
    );
    return { meterReading: (v: number | null) => lm.meterReading(v), replan: (why: string) => lm.replan(why), tick: () => lm.tick() };
  };
  const samples: SiteSample[] = [];
  // Other load 1 kW; PV 9 kW for 5 min, a cloud (1.5 kW) for 5 min, 9 kW again for 5 min.
  const result = await runScenario(
    {
      name: 'pv mode, one car',
      chargers: 1,
      limitA: LIMIT,
      marginA: 1,
      otherLoad: [{ atMs: 0, kw: 1 }],
      pv: [
        { atMs: 0, kw: 9 },
        { atMs: 300_000, kw: 1.5 },
        { atMs: 600_000, kw: 9 },
      ],
      mode: 'pv',
      meterIntervalMs: 1000,
      reportIntervalMs: 10_000,
      durationMs: 900_000,
    },
    controller,
    (s) => samples.push(s),
  );
  const at = (ms: number) => samples.find((s) => s.t >= samples[0]!.t + ms)!;
  const surplusA = (9 - 1) * (1000 / (3 * V)); // 11.6 A per phase
  const sunny = at(250_000).carsA[0]!;
  t.ok(sunny >= Math.floor(surplusA) - 1 && sunny <= surplusA, `in the sun the car takes the surplus: ${sunny.toFixed(1)} A of ${surplusA.toFixed(1)} A`);
  const importA = samples.filter((s) => s.t - samples[0]!.t > 60_000 && s.t - samples[0]!.t < 300_000).map((s) => s.siteA);
  t.ok(Math.max(...importA) <= 1, `while the sun shines the site imports at most ${Math.max(...importA).toFixed(2)} A (≤ 1 A)`);
  const cloudy = (ms: number) => at(300_000 + ms).carsA[0]!;
  t.ok(cloudy(60_000) >= 5.9, `under the cloud the car keeps the minimum for the disable delay (${cloudy(60_000).toFixed(1)} A at +60 s)`);
  t.equal(cloudy(200_000), 0, 'paused once the surplus stayed below the minimum for 180 s (+ the car following)');
  t.ok(cloudy(170_000) > 0, 'not paused before the disable delay');
  const backAt = samples.find((s) => s.t - samples[0]!.t > 600_000 && s.carsA[0]! > 0.5);
  const resumeMs = backAt!.t - samples[0]!.t - 600_000;
  t.ok(resumeMs >= 60_000 && resumeMs <= 75_000, `resumed ${resumeMs / 1000} s after the sun came back (enable delay 60 s, + settling)`);
  t.ok(result.maxA <= LIMIT, `highest site current ${result.maxA} A ≤ ${LIMIT} A`);
  t.ok(result.switchesPer5MinMax <= 2, `pause↔charge changes per 5 min: ${result.switchesPer5MinMax}`);
});
