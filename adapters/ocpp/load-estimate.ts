import type { PhaseIndex, PhaseTriple } from './load-plan.js';

/**
 * The site's other load (everything but EV charging), estimated from a grid meter that also
 * measures the chargers.
 *
 * The meter and the chargers do not measure at the same moments: the meter reports every
 * 1–5 s, a charger every 2–60 s (MeterValues), and a car takes ~1.5 s (up to 5 s, IEC 61851-1)
 * to follow a new limit, then ramps. "Meter now minus each charger's last report" mixes a
 * reading from now with reports from before a change, and swings by whole car currents while
 * cars ramp (seen: a steady 4.3 A estimated 21.7 → 26.1 → 4.3 → 0.0 A, issue 20).
 *
 * So each session contributes a range, not a number: a car that has followed its last limit
 * (settled) draws what it reported; one with a change in flight draws something between its
 * report and its new limit. That gives bounds on the other load at each meter reading:
 *   lower = meter − Σ upper draws,  upper = meter − Σ lower draws.
 * The estimate stays where it was while it lies within the bounds (a ramp in flight proves
 * nothing), moves down to the upper bound when the upper bound falls below it, and jumps to the
 * upper bound (conservative) when the lower bound proves a rise. With every car settled the
 * bounds meet and the estimate is exact.
 */
export interface SessionDraw {
  phases: readonly PhaseIndex[];
  /** What the charger last reported per phase (A); undefined: no report yet. */
  reportA?: PhaseTriple;
  /** The limit in force (A per phase); undefined: never set by load management. */
  limitA?: number;
  /** What the session can draw at most when its limit is unknown (the charger's default). */
  maxA: number;
  /** The car has followed its last limit: its report was taken after it had time to. */
  settled: boolean;
}

export interface DrawBounds {
  lo: PhaseTriple;
  hi: PhaseTriple;
}

/** Per phase, the least and the most the sessions together can be drawing now. */
export function drawBounds(sessions: readonly SessionDraw[]): DrawBounds {
  const lo: PhaseTriple = [0, 0, 0];
  const hi: PhaseTriple = [0, 0, 0];
  for (const s of sessions) {
    for (const p of s.phases) {
      const report = s.reportA?.[p];
      if (s.settled && report !== undefined) {
        lo[p] += report;
        hi[p] += report;
      } else {
        const limit = s.limitA ?? s.maxA;
        lo[p] += Math.min(report ?? 0, limit);
        hi[p] += Math.max(report ?? 0, limit);
      }
    }
  }
  return { lo, hi };
}

export class OtherLoadEstimator {
  private value: number[] | undefined;
  /** The bounds of the last update, for the plan's reasons and the status. */
  bounds: { lower: number[]; upper: number[] } | undefined;

  /**
   * @param riseToleranceA a lower bound this far above the estimate proves a rise; below it,
   *   the difference is read as measurement noise (the plan's margin covers it).
   * @param floorA the least the other load can be: 0 for the site limit (PV export never makes
   *   room above the breaker), -Infinity for the PV surplus (export is other load below 0).
   */
  constructor(
    private readonly riseToleranceA = 0.5,
    private readonly floorA = 0,
  ) {}

  /** The current estimate per channel (A), undefined before the first reading. */
  get estimate(): readonly number[] | undefined {
    return this.value;
  }

  /**
   * A meter reading: `meterA` per channel (a phase, or the site total for a power meter),
   * `evLo`/`evHi` the bounds of what EV charging draws on the same channels.
   */
  update(meterA: readonly number[], evLo: readonly number[], evHi: readonly number[]): readonly number[] {
    const lower = meterA.map((m, i) => Math.max(this.floorA, m - evHi[i]!));
    const upper = meterA.map((m, i) => Math.max(this.floorA, m - evLo[i]!));
    this.bounds = { lower, upper };
    const previous = this.value;
    this.value = upper.map((up, i) => {
      const prev = previous?.[i];
      if (prev === undefined) return up;
      if (lower[i]! > prev + this.riseToleranceA) return up;
      return Math.min(Math.max(prev, lower[i]!), up);
    });
    return this.value;
  }

  /** Forget the estimate (the meter went stale: the next reading starts from its upper bound). */
  reset(): void {
    this.value = undefined;
    this.bounds = undefined;
  }
}
