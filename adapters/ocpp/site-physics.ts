/**
 * Site physics for testing load management the way a site behaves: a grid meter that measures
 * the chargers too, cars that follow a new limit after a delay and ramp, chargers that report
 * at their own interval and phase, other load that steps. Runs in simulated time (a 10-minute
 * scenario takes well under a second), driving a controller through the same calls the OCPP
 * adapter makes: meter readings, session reports, `apply` of a limit that the charger accepts
 * after a round trip.
 *
 * Used by test/adapters/ocpp/control-loop.test.ts and bench/load-management.bench.ts.
 */
import type { PhaseTriple } from './load-plan.js';
import type { ChargeMode } from './charge-modes.js';

export interface CarSpec {
  /** What the car's onboard charger takes at most (A per phase). */
  maxA: number;
  /** Time from a new limit at the charger to the car starting to follow (IEC 61851-1 allows 5 s; 1.5 s seen). */
  delayMs: number;
  /** Ramp rates (A/s) up and down once it follows. */
  rampUpAPerS: number;
  rampDownAPerS: number;
}

export interface ScenarioSpec {
  name: string;
  chargers: number;
  /** Site limit per phase (A) and the controller's margin. */
  limitA: number;
  marginA: number;
  /** Other load steps: from `atMs` on, `kw` spread evenly over three phases at 230 V. */
  otherLoad: Array<{ atMs: number; kw: number }>;
  meterIntervalMs: number;
  /** Grid meter silent from/to (meter loss). */
  meterLoss?: { fromMs: number; toMs: number };
  /** Added to the meter's own timestamps (a wrong clock). */
  meterSkewMs?: number;
  reportIntervalMs: number;
  durationMs: number;
  car?: Partial<CarSpec>;
  /** Round trip of SetChargingProfile (gateway → charger → accepted). */
  commandLatencyMs?: number;
  /** Seed of the chargers' report phases. */
  seed?: number;
  /** Cars arrive one after another this far apart (default 5 s); each session starts at the TxDefaultProfile's 6 A. */
  arrivalSpacingMs?: number;
  /** PV production steps: from `atMs` on, `kw` spread evenly over three phases (the grid meter goes negative on export). */
  pv?: Array<{ atMs: number; kw: number }>;
  /** Charge mode of every session (charge-modes.ts); default: none (as now). */
  mode?: ChargeMode;
}

/** The site at one simulated step (every 100 ms), for scenarios that check more than the figures. */
export interface SiteSample {
  t: number;
  /** True site current per phase (A): other load − PV + cars; negative when exporting. */
  siteA: number;
  otherA: number;
  pvA: number;
  /** What each car draws (A per phase). */
  carsA: number[];
}

/** What a controller under test gets from the site, the OCPP adapter's calls. */
export interface SiteSession {
  key: string;
  phases: Array<0 | 1 | 2>;
  minA: number;
  maxA: number;
  priority: number;
  order: number;
  drawA: PhaseTriple;
  reportedAt?: number;
  startedAt?: number;
  mode?: ChargeMode;
}

export interface ControllerUnderTest {
  meterReading(valueW: number | null, t: number): void;
  replan(trigger: string): void;
  tick?(): void;
}

export interface ControllerHooks {
  now(): number;
  sessions(): SiteSession[];
  apply(key: string, limitA: number): Promise<void>;
}

export interface RunResult {
  scenario: string;
  /** Highest true site current on any phase (A). */
  maxA: number;
  /** Share of the time the true site current was above the limit. */
  aboveShare: number;
  /** Longest stretch above the limit counted from the first meter reading that showed it (ms): what the decrease path took. */
  longestAfterDetectionMs: number;
  /** Longest stretch above limit + 10 % not within a reaction window of an other-load step (ms). */
  controllerOvershootMs: number;
  /** Highest current outside reaction windows of other-load steps (A). */
  maxOutsideStepsA: number;
  /** Pause↔charge changes of the car that changed most, per 5 minutes of steady other load. */
  switchesPer5MinMax: number;
  /** EV current used of what was available (min of demand and limit − other − margin), in the last 40 % of each steady stretch. */
  headroomUsed: number;
  commands: number;
}

const VOLT = 230;
const DT = 100;

function mulberry(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Car {
  key: string;
  spec: CarSpec;
  /** Limits the charger accepted, with the time they reached the charger. */
  limits: Array<{ at: number; limitA: number }>;
  currentA: number;
  report: { drawA: number; at: number } | undefined;
  reportOffset: number;
  arrivesAt: number;
  switches: Array<{ at: number }>;
  charging: boolean;
  /** The first start of charging is the session starting, not a switch. */
  started: boolean;
}

/** Runs one scenario against a controller made by `make` (given the hooks it must use). */
export async function runScenario(
  spec: ScenarioSpec,
  make: (hooks: ControllerHooks) => ControllerUnderTest,
  onSample?: (sample: SiteSample) => void,
): Promise<RunResult> {
  // Following a decrease takes ~1.5 s in all (issue 20: cars seen taking 1.5 s); increases ramp.
  const car: CarSpec = { maxA: 32, delayMs: 1300, rampUpAPerS: 4, rampDownAPerS: 100, ...spec.car };
  const spacing = spec.arrivalSpacingMs ?? 5000;
  const latency = spec.commandLatencyMs ?? 200;
  const random = mulberry(spec.seed ?? 1);
  const startAt = Date.UTC(2026, 0, 1);
  let now = startAt;
  const cars: Car[] = Array.from({ length: spec.chargers }, (_, i) => ({
    key: `cp${i + 1}/1`,
    spec: car,
    // TxDefaultProfile: every session starts at the minimum.
    limits: [{ at: startAt + i * spacing, limitA: 6 }],
    currentA: 0,
    report: undefined,
    reportOffset: Math.floor((random() * spec.reportIntervalMs) / DT) * DT,
    arrivesAt: startAt + i * spacing,
    switches: [],
    charging: false,
    started: false,
  }));
  const byKey = new Map(cars.map((c) => [c.key, c]));
  const pending: Array<{ at: number; run: () => void }> = [];
  let commands = 0;
  const hooks: ControllerHooks = {
    now: () => now,
    sessions: () =>
      cars
        .filter((c) => c.arrivesAt <= now)
        .map((c, i) => ({
          key: c.key,
          phases: [0, 1, 2],
          minA: 6,
          maxA: 32,
          priority: 0,
          order: startAt + i,
          drawA: c.report ? [c.report.drawA, c.report.drawA, c.report.drawA] : [0, 0, 0],
          reportedAt: c.report?.at,
          startedAt: c.arrivesAt,
          ...(spec.mode ? { mode: spec.mode } : {}),
        })),
    apply: (key, limitA) =>
      new Promise<void>((resolve) => {
        commands++;
        const target = byKey.get(key);
        pending.push({
          at: now + latency,
          run: () => {
            target?.limits.push({ at: now, limitA });
            resolve();
          },
        });
      }),
  };
  const controller = make(hooks);

  const otherA = (t: number): number => {
    let kw = 0;
    for (const s of spec.otherLoad) if (t - startAt >= s.atMs) kw = s.kw;
    return (kw * 1000) / (3 * VOLT);
  };
  const pvA = (t: number): number => {
    let kw = 0;
    for (const s of spec.pv ?? []) if (t - startAt >= s.atMs) kw = s.kw;
    return (kw * 1000) / (3 * VOLT);
  };
  const steps = spec.otherLoad.map((s) => startAt + s.atMs).filter((t) => t > startAt);
  let nextMeter = startAt + spec.meterIntervalMs;
  let stepDetected = new Map<number, number>(); // step time → first meter reading after it
  let aboveMs = 0;
  let maxA = 0;
  let maxOutside = 0;
  let overshootRun = 0;
  let controllerOvershootMs = 0;
  let excursionDetectedAt: number | undefined;
  let longestAfterDetection = 0;
  let lastMeterAt: number | undefined;
  let usedSum = 0;
  let availSum = 0;

  for (let t = startAt; t < startAt + spec.durationMs; t += DT) {
    now = t;
    // Commands reaching chargers.
    for (let i = 0; i < pending.length; ) {
      if (pending[i]!.at <= now) {
        pending.splice(i, 1)[0]!.run();
      } else i++;
    }
    for (const c of cars) if (c.arrivesAt === now) controller.replan(`session started ${c.key}`);
    // Cars follow the limit in force `delayMs` ago, ramping.
    for (const c of cars) {
      if (c.arrivesAt > now) continue;
      let limit = 0;
      for (const l of c.limits) if (l.at <= now - c.spec.delayMs) limit = l.limitA;
      const target = limit < 6 ? 0 : Math.min(limit, c.spec.maxA);
      const rate = (target > c.currentA ? c.spec.rampUpAPerS : c.spec.rampDownAPerS) * (DT / 1000);
      c.currentA = target > c.currentA ? Math.min(target, c.currentA + rate) : Math.max(target, c.currentA - rate);
      const charging = c.currentA > 0.5;
      if (charging !== c.charging) {
        if (c.started) c.switches.push({ at: now });
        c.started = true;
      }
      c.charging = charging;
    }
    const ev = cars.reduce((s, c) => s + c.currentA, 0);
    const other = otherA(now);
    const pv = pvA(now);
    const site = other - pv + ev;
    onSample?.({ t: now, siteA: site, otherA: other, pvA: pv, carsA: cars.map((c) => c.currentA) });
    // Figures.
    maxA = Math.max(maxA, site);
    const inReaction = steps.some((s) => now >= s && now <= (stepDetected.get(s) ?? Infinity) + 2000);
    if (!inReaction) maxOutside = Math.max(maxOutside, site);
    if (site > spec.limitA) {
      aboveMs += DT;
      if (excursionDetectedAt === undefined && lastMeterAt !== undefined && lastMeterAt >= now - DT) excursionDetectedAt = lastMeterAt;
      if (excursionDetectedAt !== undefined) longestAfterDetection = Math.max(longestAfterDetection, now - excursionDetectedAt);
    } else excursionDetectedAt = undefined;
    if (site > spec.limitA * 1.1 && !inReaction) {
      overshootRun += DT;
      controllerOvershootMs = Math.max(controllerOvershootMs, overshootRun);
    } else overshootRun = 0;
    // Headroom used, in the settled part of each steady stretch (last 40 % before the next step or the end).
    const bounds = [startAt, ...steps, startAt + spec.durationMs];
    const seg = bounds.findIndex((b, i) => now >= b && now < bounds[i + 1]!);
    const segStart = bounds[seg]!;
    const segEnd = bounds[seg + 1]!;
    if (now >= segStart + 0.6 * (segEnd - segStart)) {
      const demand = cars.length * Math.min(car.maxA, 32);
      const avail = Math.max(0, Math.min(demand, spec.limitA - spec.marginA - other));
      usedSum += Math.min(ev, avail);
      availSum += avail;
    }
    // Charger reports at their own phase.
    for (const c of cars) {
      if (c.arrivesAt > now) continue;
      if ((now - startAt - c.reportOffset) % spec.reportIntervalMs === 0 && now - startAt >= c.reportOffset) {
        c.report = { drawA: Math.round(c.currentA * 10) / 10, at: now };
        controller.replan(`meter values ${c.key}`);
      }
    }
    // Grid meter (W over three phases; it measures the chargers too).
    if (now >= nextMeter) {
      nextMeter += spec.meterIntervalMs;
      const lost = spec.meterLoss && now - startAt >= spec.meterLoss.fromMs && now - startAt < spec.meterLoss.toMs;
      if (!lost) {
        for (const s of steps) if (s <= now && !stepDetected.has(s)) stepDetected.set(s, now);
        lastMeterAt = now;
        controller.meterReading(Math.round(site * 3 * VOLT), now + (spec.meterSkewMs ?? 0));
      }
    }
    if ((now - startAt) % 1000 === 0) controller.tick?.();
    // Let the controller's rounds run (they await `apply`, resolved above as time passes).
    for (let i = 0; i < 4; i++) await new Promise((r) => setImmediate(r));
  }
  stepDetected = new Map();
  const steadyMs = spec.durationMs;
  const switchesMax = Math.max(0, ...cars.map((c) => c.switches.length));
  return {
    scenario: spec.name,
    maxA: round1(maxA),
    aboveShare: aboveMs / spec.durationMs,
    longestAfterDetectionMs: longestAfterDetection,
    controllerOvershootMs,
    maxOutsideStepsA: round1(maxOutside),
    switchesPer5MinMax: round1((switchesMax * 300_000) / steadyMs),
    headroomUsed: availSum > 0 ? usedSum / availSum : 1,
    commands,
  };
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
