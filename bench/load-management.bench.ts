/**
 * Load management under real timing (issue 20): the same site-physics scenarios
 * (adapters/ocpp/site-physics.ts, simulated time) against the controller before issue 20
 * (bench/load/previous-controller.ts) and the control loop (adapters/ocpp/load-manager.ts).
 * 32 A per phase, margin 1 A, fallback 16 A, grid meter in W measuring the chargers too, cars
 * following a new limit in ~1.5 s and ramping up at 4 A/s, 10 minutes with other load
 * 3 → 15 → 3 kW (steps at 200 s and 400 s) unless the scenario says otherwise.
 *
 *   npm run bench -- load-management        (or: node --import tsx bench/load-management.bench.ts)
 *
 * Columns: highest true site current; share of time above 32 A; longest stretch above 32 A
 * counted from the meter reading that showed it (the decrease path); longest stretch above
 * 35.2 A outside the reaction window of an other-load step (controller-made); worst car's
 * pause↔charge changes per 5 min; EV current used of what was available in steady state;
 * SetChargingProfile calls. Exits 1 when the new controller misses a target of the issue.
 */
import { runScenario, type ControllerHooks, type RunResult, type ScenarioSpec } from '../adapters/ocpp/site-physics.js';
import { LoadManager } from '../adapters/ocpp/load-manager.js';
import { LoadManager as PreviousLoadManager } from './load/previous-controller.js';

const LIMIT = 32;
const meter = { datapoint: 'site.grid.power', unit: 'W' as const, staleAfterMs: 30_000, includesChargers: true };
const site = { limitA: LIMIT, voltage: 230, sitePhases: 3 as const, fallbackA: 16, marginA: 1, meter };
const quiet = { onPlan: () => undefined, onError: () => undefined };

function current(h: ControllerHooks) {
  const lm = new LoadManager(site, { now: h.now, sessions: h.sessions, apply: h.apply, ...quiet });
  return { meterReading: (v: number | null) => lm.meterReading(v), replan: (why: string) => lm.replan(why), tick: () => lm.tick() };
}
function previous(h: ControllerHooks) {
  // As the adapter called it then: with the meter's own timestamp.
  const lm = new PreviousLoadManager(site, { now: h.now, sessions: h.sessions, apply: h.apply, ...quiet });
  return { meterReading: (v: number | null, t: number) => lm.meterReading(v, t), replan: (why: string) => lm.replan(why) };
}

const base = { limitA: LIMIT, marginA: 1, durationMs: 600_000 };
const steps = [
  { atMs: 0, kw: 3 },
  { atMs: 200_000, kw: 15 },
  { atMs: 400_000, kw: 3 },
];
const scenarios: ScenarioSpec[] = [];
for (const chargers of [1, 6, 20])
  for (const meterIntervalMs of [1000, 5000])
    for (const reportIntervalMs of [2000, 10_000])
      scenarios.push({
        ...base,
        name: `${chargers} ch, meter ${meterIntervalMs / 1000}s, MV ${reportIntervalMs / 1000}s`,
        chargers,
        meterIntervalMs,
        reportIntervalMs,
        otherLoad: steps,
      });
scenarios.push({
  ...base,
  durationMs: 300_000,
  name: '6 ch, steady 3 kW',
  chargers: 6,
  meterIntervalMs: 1000,
  reportIntervalMs: 10_000,
  otherLoad: [{ atMs: 0, kw: 3 }],
});
scenarios.push({
  ...base,
  durationMs: 300_000,
  name: '6 ch, steady 15 kW',
  chargers: 6,
  meterIntervalMs: 1000,
  reportIntervalMs: 10_000,
  otherLoad: [{ atMs: 0, kw: 15 }],
});
scenarios.push({
  ...base,
  name: '6 ch, meter lost 120–300 s (3 kW)',
  chargers: 6,
  meterIntervalMs: 1000,
  reportIntervalMs: 10_000,
  otherLoad: [{ atMs: 0, kw: 3 }],
  meterLoss: { fromMs: 120_000, toMs: 300_000 },
});
scenarios.push({
  ...base,
  name: '6 ch, meter lost 120–300 s (steps)',
  chargers: 6,
  meterIntervalMs: 1000,
  reportIntervalMs: 10_000,
  otherLoad: steps,
  meterLoss: { fromMs: 120_000, toMs: 300_000 },
});
scenarios.push({
  ...base,
  name: '6 ch, meter clock +1 h, lost',
  chargers: 6,
  meterIntervalMs: 1000,
  reportIntervalMs: 10_000,
  otherLoad: steps,
  meterSkewMs: 3_600_000,
  meterLoss: { fromMs: 120_000, toMs: 300_000 },
});
scenarios.push({
  ...base,
  name: '6 ch, meter clock −1 h',
  chargers: 6,
  meterIntervalMs: 1000,
  reportIntervalMs: 10_000,
  otherLoad: steps,
  meterSkewMs: -3_600_000,
});
scenarios.push({
  ...base,
  name: '6 ch, cars take 13 A at most',
  chargers: 6,
  meterIntervalMs: 1000,
  reportIntervalMs: 10_000,
  otherLoad: steps,
  car: { maxA: 13 },
});
scenarios.push({
  ...base,
  name: '6 ch, cars follow in 4 s',
  chargers: 6,
  meterIntervalMs: 1000,
  reportIntervalMs: 10_000,
  otherLoad: steps,
  car: { delayMs: 4000 },
});

const row = (who: string, r: RunResult): string =>
  [
    who.padEnd(9),
    r.scenario.padEnd(36),
    `${r.maxA.toFixed(1)} A`.padStart(8),
    `${(r.aboveShare * 100).toFixed(1)} %`.padStart(8),
    `${(r.longestAfterDetectionMs / 1000).toFixed(1)} s`.padStart(8),
    `${(r.controllerOvershootMs / 1000).toFixed(1)} s`.padStart(8),
    String(r.switchesPer5MinMax).padStart(7),
    `${(r.headroomUsed * 100).toFixed(0)} %`.padStart(6),
    String(r.commands).padStart(6),
  ].join(' ');

console.log(
  [
    'who'.padEnd(9),
    'scenario'.padEnd(36),
    'max'.padStart(8),
    '>32 A'.padStart(8),
    'detect→ok'.padStart(8),
    '>110 %'.padStart(8),
    'sw/5min'.padStart(7),
    'used'.padStart(6),
    'calls'.padStart(6),
  ].join(' '),
);
let missed = 0;
const ratios: number[] = [];
for (const spec of scenarios) {
  const before = await runScenario(spec, previous);
  const after = await runScenario(spec, current);
  console.log(row('previous', before));
  console.log(row('now', after));
  if (after.aboveShare > 0) ratios.push(before.aboveShare / after.aboveShare);
  // Targets of the issue; the slow-car and lost-meter-with-steps rows show limits of physics and of the fallback, not targets.
  const target = !/follow in 4 s|lost 120–300 s \(steps\)|\+1 h, lost/.test(spec.name);
  if (
    target &&
    (after.longestAfterDetectionMs > 2000 ||
      after.controllerOvershootMs > 0 ||
      after.switchesPer5MinMax > 2 ||
      (!/lost/.test(spec.name) && after.headroomUsed < 0.85))
  ) {
    missed++;
    console.log(`  ^ misses a target`);
  }
}
if (ratios.length)
  console.log(
    `\ntime above 32 A, previous / now (median over scenarios where now > 0): ${ratios.sort((a, b) => a - b)[Math.floor(ratios.length / 2)]!.toFixed(0)}×`,
  );
process.exit(missed ? 1 : 0);
