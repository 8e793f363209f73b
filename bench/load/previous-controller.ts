// The load manager as it was before issue 20 (commit c179fd3), kept only so bench/load-management.bench.ts
// can run the same scenarios against it and print old against new. Not used by the product.
/**
 * Site load management: shares the site's current limit among charging sessions.
 *
 * `planLoad` is pure (inputs → plan with reasons), so it can be property-tested; the
 * `LoadManager` runner feeds it from the site meter and the chargers and applies the result.
 * All arithmetic is in integer deci-amperes: OCPP 1.6 charging schedule limits have a
 * resolution of 0.1 (§7.13 ChargingSchedulePeriod.limit, multipleOf 0.1), and integers make
 * "the sum never exceeds the limit" exact rather than subject to floating-point rounding.
 */

export type PhaseIndex = 0 | 1 | 2;
export type PhaseTriple = [number, number, number];

export interface LoadSession {
  /** Stable key, e.g. `<charger>/<connector>`. */
  key: string;
  /** Site phases the session draws from (3-phase charger: all; 1-phase: the one it is wired to). */
  phases: PhaseIndex[];
  /** Below this the vehicle cannot charge (IEC 61851-1: 6 A). */
  minA: number;
  /** Charger maximum, lowered by operator limits (current_limit, power_limit). */
  maxA: number;
  /** Higher is served first; equal priorities share fairly. */
  priority: number;
  /** Tie-breaker among equal priorities when not all fit: earlier start wins (first come). */
  order: number;
  /** Why maxA is what it is, for the plan's reasons. */
  capReason?: string;
}

export type MeterState = 'none' | 'fresh' | 'stale';

export interface PlanInput {
  /** Site connection limit per phase (A). */
  siteLimitA: number;
  /** Site load that is not EV charging, per phase (A); used when meterState is fresh. */
  otherLoadA?: PhaseTriple;
  meterState: MeterState;
  /** Total EV current per phase allowed when the meter is stale. */
  fallbackA: number;
  /** Headroom kept below the limit when metering (A). */
  marginA?: number;
  sessions: readonly LoadSession[];
}

export interface Allocation {
  key: string;
  limitA: number;
  phases: PhaseIndex[];
  paused: boolean;
  reason: string;
}

export interface Plan {
  siteLimitA: number;
  meterState: MeterState;
  /** Current available to EV charging per phase after other load, margin and fallback (A). */
  availableA: PhaseTriple;
  /** Sum of granted current per phase (A); never above availableA. */
  allocatedA: PhaseTriple;
  allocations: Allocation[];
  reason: string;
}

const toDeci = (a: number): number => Math.floor(a * 10 + 1e-9);
const fromDeci = (d: number): number => d / 10;
const phaseName = (p: PhaseIndex): string => `L${p + 1}`;

export function planLoad(input: PlanInput): Plan {
  const limit = Math.max(0, toDeci(input.siteLimitA));
  let reason: string;
  let avail: PhaseTriple;
  if (input.meterState === 'fresh' && input.otherLoadA) {
    const margin = toDeci(input.marginA ?? 0);
    avail = input.otherLoadA.map((other) => Math.max(0, limit - Math.ceil(Math.max(0, other) * 10 - 1e-9) - margin)) as PhaseTriple;
    reason = `site limit ${input.siteLimitA} A minus other load ${input.otherLoadA.map((a) => a.toFixed(1)).join('/')} A`;
  } else if (input.meterState === 'stale') {
    const fallback = Math.min(limit, Math.max(0, toDeci(input.fallbackA)));
    avail = [fallback, fallback, fallback];
    reason = `site meter stale: safe fallback ${fromDeci(fallback)} A`;
  } else {
    avail = [limit, limit, limit];
    reason = `site limit ${input.siteLimitA} A (no site meter)`;
  }

  const sessions = [...input.sessions].sort((a, b) => b.priority - a.priority || a.order - b.order || (a.key < b.key ? -1 : 1));
  const grant = new Map<string, number>();
  const why = new Map<string, string>();
  const used: PhaseTriple = [0, 0, 0];

  // 1. Admission: in priority order, a session runs only if its minimum fits on all its phases.
  const admitted: Array<LoadSession & { min: number; max: number }> = [];
  for (const s of sessions) {
    const min = Math.ceil(s.minA * 10 - 1e-9);
    const max = toDeci(s.maxA);
    if (s.phases.length === 0 || max <= 0) {
      grant.set(s.key, 0);
      why.set(s.key, `paused: ${s.capReason ?? 'no current allowed'}`);
      continue;
    }
    if (max < min) {
      grant.set(s.key, 0);
      why.set(s.key, `paused: cap ${fromDeci(max)} A is below the minimum ${s.minA} A${s.capReason ? ` (${s.capReason})` : ''}`);
      continue;
    }
    const short = s.phases.find((p) => used[p] + min > avail[p]);
    if (short !== undefined) {
      grant.set(s.key, 0);
      why.set(s.key, `paused: needs ${s.minA} A, only ${fromDeci(Math.max(0, avail[short] - used[short]))} A left on ${phaseName(short)}`);
      continue;
    }
    for (const p of s.phases) used[p] += min;
    grant.set(s.key, min);
    admitted.push({ ...s, min, max });
  }

  // 2. Water-filling, one priority tier at a time: everybody in the tier rises together until
  //    a phase is full or a session reaches its cap (max-min fair share per phase).
  const tiers = [...new Set(admitted.map((s) => s.priority))].sort((a, b) => b - a);
  for (const tier of tiers) {
    const rising = new Set(admitted.filter((s) => s.priority === tier && grant.get(s.key)! < s.max));
    while (rising.size > 0) {
      const count: PhaseTriple = [0, 0, 0];
      for (const s of rising) for (const p of s.phases) count[p]++;
      let step = Infinity;
      for (const p of [0, 1, 2] as PhaseIndex[]) if (count[p] > 0) step = Math.min(step, Math.floor((avail[p] - used[p]) / count[p]));
      for (const s of rising) step = Math.min(step, s.max - grant.get(s.key)!);
      if (step > 0) {
        for (const s of rising) {
          grant.set(s.key, grant.get(s.key)! + step);
          for (const p of s.phases) used[p] += step;
        }
      }
      for (const s of [...rising]) {
        const full = s.phases.some((p) => avail[p] - used[p] < count[p] || avail[p] - used[p] <= 0);
        if (grant.get(s.key)! >= s.max || full || step <= 0) rising.delete(s);
      }
    }
  }

  const allocations: Allocation[] = sessions.map((s) => {
    const d = grant.get(s.key) ?? 0;
    let r = why.get(s.key);
    if (!r) {
      const max = toDeci(s.maxA);
      if (d >= max) r = `at cap ${s.maxA} A${s.capReason ? ` (${s.capReason})` : ''}`;
      else r = `fair share of ${s.phases.map((p) => `${phaseName(p)} ${fromDeci(avail[p])} A`).join(', ')} (priority ${s.priority})`;
    }
    return { key: s.key, limitA: fromDeci(d), phases: [...s.phases], paused: d === 0, reason: r };
  });
  return {
    siteLimitA: input.siteLimitA,
    meterState: input.meterState,
    availableA: avail.map(fromDeci) as PhaseTriple,
    allocatedA: used.map(fromDeci) as PhaseTriple,
    allocations,
    reason,
  };
}

// ---------------------------------------------------------------------------------------------
// Runner

export interface SiteLimitConfig {
  /** Per-phase current limit (A); or derived from `limitKw`. */
  limitA: number;
  voltage: number;
  sitePhases: 1 | 3;
  fallbackA: number;
  marginA: number;
  meter?: { datapoint: string; unit: 'W' | 'kW' | 'A'; staleAfterMs: number; includesChargers: boolean };
}

export interface LoadManagerDeps {
  now(): number;
  /** Sessions eligible for current now, with what they measurably draw per phase (A). */
  sessions(): Array<LoadSession & { drawA: PhaseTriple }>;
  /** Applies a new limit to one session (sends the charging profile). */
  apply(key: string, limitA: number): Promise<void>;
  onPlan(plan: Plan & { t: number; trigger: string }): void;
  onError(key: string, err: unknown): void;
  /**
   * Called between the decreases and the increases of a round (only when every decrease went
   * through), so whole-charger caps are lowered after the sessions dropped and raised before
   * the sessions rise.
   */
  betweenLowerAndRaise?(plan: Plan): Promise<void>;
}

/** Plans on every trigger (meter reading, status change, setpoint), applies decreases before increases. */
export class LoadManager {
  private meterA: PhaseTriple | undefined;
  /** With a W/kW meter: the site's total current summed over its phases (the meter cannot tell the phases apart). */
  private meterTotalA: number | undefined;
  private meterT = 0;
  private running = false;
  private pending: string | undefined;
  private readonly applied = new Map<string, number>();
  lastPlan: (Plan & { t: number; trigger: string }) | undefined;
  plans = 0;

  constructor(
    private readonly config: SiteLimitConfig,
    private readonly deps: LoadManagerDeps,
  ) {}

  /** A site meter reading: A per phase, or W/kW for the whole site (see `round` for how that is split). */
  meterReading(value: number | null, t: number): void {
    const meter = this.config.meter;
    if (!meter) return;
    if (value === null) {
      this.meterA = undefined;
      this.meterTotalA = undefined;
    } else if (meter.unit === 'A') {
      this.meterA = [value, value, value];
      this.meterTotalA = undefined;
      this.meterT = t;
    } else {
      const total = (meter.unit === 'kW' ? value * 1000 : value) / this.config.voltage;
      const a = total / this.config.sitePhases;
      this.meterA = [a, a, a];
      this.meterTotalA = total;
      this.meterT = t;
    }
    this.replan('site meter reading');
  }

  meterState(): MeterState {
    const meter = this.config.meter;
    if (!meter) return 'none';
    if (!this.meterA || this.deps.now() - this.meterT > meter.staleAfterMs) return 'stale';
    return 'fresh';
  }

  /** Forget what was applied to a session (it ended, or its charger reconnected). */
  forget(key: string): void {
    this.applied.delete(key);
  }

  appliedLimit(key: string): number | undefined {
    return this.applied.get(key);
  }

  replan(trigger: string): void {
    if (this.running) {
      this.pending = trigger; // coalesced: one more round after the current one, never a queue
      return;
    }
    this.running = true;
    void this.round(trigger).finally(() => {
      this.running = false;
      const next = this.pending;
      this.pending = undefined;
      if (next) this.replan(next);
    });
  }

  /** Resolves once no plan is running or pending (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running || this.pending) await new Promise((r) => setTimeout(r, 5));
  }

  private async round(trigger: string): Promise<void> {
    const sessions = this.deps.sessions();
    const state = this.meterState();
    let otherLoadA: PhaseTriple | undefined;
    if (state === 'fresh' && this.meterA) {
      const ev: PhaseTriple = [0, 0, 0];
      if (this.config.meter?.includesChargers) for (const s of sessions) for (const p of [0, 1, 2] as const) ev[p] += s.drawA[p];
      if (this.meterTotalA !== undefined) {
        // A power meter sees only the total. Take the chargers' total out of it, then spread
        // the rest evenly: subtracting a single-phase charger's draw from an evenly spread
        // share would hide the other load on its own phase and overload that phase.
        const other = Math.max(0, this.meterTotalA - ev[0] - ev[1] - ev[2]) / this.config.sitePhases;
        otherLoadA = [other, other, other];
      } else {
        otherLoadA = this.meterA.map((m, p) => Math.max(0, m - ev[p]!)) as PhaseTriple;
      }
    }
    const plan = planLoad({
      siteLimitA: this.config.limitA,
      meterState: state,
      fallbackA: this.config.fallbackA,
      marginA: this.config.marginA,
      otherLoadA,
      sessions,
    });
    const stamped = { ...plan, t: this.deps.now(), trigger };
    this.lastPlan = stamped;
    this.plans++;
    this.deps.onPlan(stamped);
    const changes = plan.allocations.filter((a) => this.applied.get(a.key) !== a.limitA);
    // Lower limits first, so the site never sees the new higher limits before the old ones dropped.
    const lower = changes.filter((a) => a.limitA < (this.applied.get(a.key) ?? Infinity));
    const higher = changes.filter((a) => !lower.includes(a));
    let lowered = true;
    for (const group of [lower, higher]) {
      // A decrease that did not happen leaves that charger at its old, higher limit: raising
      // the others now could exceed the site limit. Skip the increases; the next round retries.
      if (group === higher && !lowered) break;
      if (group === higher && this.deps.betweenLowerAndRaise) await this.deps.betweenLowerAndRaise(plan);
      await Promise.all(
        group.map(async (a) => {
          try {
            await this.deps.apply(a.key, a.limitA);
            this.applied.set(a.key, a.limitA);
          } catch (err) {
            // The charger keeps what it had (still recorded in `applied`), so the next round
            // retries the change; a charger never confirmed keeps no entry and is resent.
            if (group === lower) lowered = false;
            this.deps.onError(a.key, err);
          }
        }),
      );
    }
  }
}
