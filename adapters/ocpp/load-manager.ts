/**
 * Site load management as a control loop (adapters/ocpp/README.md, "Load management"):
 * measure (grid meter, charger reports), estimate the other load (load-estimate.ts), plan
 * (load-plan.ts), act with timing rules:
 *
 * - Decreases at once, on the reading that calls for them.
 * - Increases only once every car has followed its last limit (a report taken `followMs`
 *   after the change, or `settleTimeoutMs` without one), not within `increaseHoldMs` of a
 *   decrease, and by at most `rampStepA` a session at a time.
 * - A paused session stays paused `minPauseMs`, and resumes only when its minimum plus
 *   `resumeMarginA` fits (hysteresis), so cars do not flip between paused and charging.
 * - Meter staleness by arrival time: a meter with a fast clock stamps its readings in the future.
 * - Charge modes (charge-modes.ts) only lower a session's maximum before the plan: off, minpv and
 *   pv never get more than the site limit gives; the PV surplus comes from the same meter.
 */
import { OtherLoadEstimator, drawBounds, type SessionDraw } from './load-estimate.js';
import { planLoad, type Allocation, type LoadSession, type MeterState, type PhaseTriple, type Plan } from './load-plan.js';
import { DEFAULT_PV, modeCaps, type ChargeMode, type PvConfig, type PvState, type Surplus } from './charge-modes.js';

export { planLoad } from './load-plan.js';
export type { Allocation, LoadSession, MeterState, PhaseIndex, PhaseTriple, Plan, PlanInput } from './load-plan.js';

export interface ControlConfig {
  /** Time a car gets to follow a new limit before its report counts (IEC 61851-1 §A.2.2: the EV follows a PWM change within 5 s). */
  followMs: number;
  /** A change counts as followed after this long even without a report (chargers that report rarely, or no current). */
  settleTimeoutMs: number;
  /** No increase sooner than this after a decrease. */
  increaseHoldMs: number;
  /** An increase raises a session by at most this much at a time (A). */
  rampStepA: number;
  /** A paused session stays paused at least this long. */
  minPauseMs: number;
  /** A paused session resumes only when its minimum plus this fits (A). */
  resumeMarginA: number;
  /** A report this far above the limit is a car that has not followed yet (A). */
  toleranceA: number;
}

const DEFAULT_CONTROL: ControlConfig = {
  followMs: 5000,
  settleTimeoutMs: 30_000,
  increaseHoldMs: 10_000,
  rampStepA: 6,
  minPauseMs: 120_000,
  resumeMarginA: 1,
  toleranceA: 1,
};

export interface SiteLimitConfig {
  /** Per-phase current limit (A); or derived from `limitKw`. */
  limitA: number;
  voltage: number;
  sitePhases: 1 | 3;
  fallbackA: number;
  marginA: number;
  meter?: { datapoint: string; unit: 'W' | 'kW' | 'A'; staleAfterMs: number; includesChargers: boolean };
  control?: Partial<ControlConfig>;
  /** Charge modes pv/minpv: delays and margin (charge-modes.ts). */
  pv?: Partial<PvConfig>;
}

/** A session as the chargers report it. */
export interface LoadSessionInput extends LoadSession {
  /** What the charger last reported per phase (A). */
  drawA: PhaseTriple;
  /** Arrival time of that report (undefined: none yet). */
  reportedAt?: number;
  /** When the session started (its first report counts once the car had `followMs` to start). */
  startedAt?: number;
  /** The connector's charge mode; undefined: none applies (as now; e.g. an offline charger holding its limit). */
  mode?: ChargeMode;
}

export interface LoadManagerDeps {
  now(): number;
  /** Sessions eligible for current now, with what they measurably draw per phase (A). */
  sessions(): LoadSessionInput[];
  /** Applies a new limit to one session (sends the charging profile). */
  apply(key: string, limitA: number): Promise<void>;
  onPlan(plan: Plan & { t: number; trigger: string }): void;
  onError(key: string, err: unknown): void;
  /** A session was paused (limit 0) or resumed by a limit the charger accepted, with the plan's reason. */
  onSwitch?(key: string, paused: boolean, reason: string): void;
  /**
   * Called between the decreases and the increases of a round (only when every decrease went
   * through), so whole-charger caps are lowered after the sessions dropped and raised before
   * the sessions rise.
   */
  betweenLowerAndRaise?(plan: Plan): Promise<void>;
}

interface Applied {
  limitA: number;
  /** When the charger accepted it. */
  at: number;
  previousA: number | undefined;
}

export type LoadPlan = Plan & {
  t: number;
  trigger: string;
  waiting?: string;
  /** What is known of the PV surplus the minpv/pv sessions may use (charge-modes.ts). */
  surplus: Surplus;
};

export class LoadManager {
  private meter: { channels: number[]; at: number } | undefined;
  private readonly estimator = new OtherLoadEstimator();
  /** The other load with PV export as negative load: the PV surplus (never used for the site limit). */
  private readonly signedEstimator = new OtherLoadEstimator(0.5, -Infinity);
  private pvStates = new Map<string, PvState>();
  private readonly pv: PvConfig;
  private readonly control: ControlConfig;
  private running = false;
  private pending: string | undefined;
  private readonly applied = new Map<string, Applied>();
  private readonly pausedSince = new Map<string, number>();
  private lastDecreaseAt = -Infinity;
  lastPlan: LoadPlan | undefined;
  plans = 0;
  /** Pause↔charge changes applied, for the status and the benchmarks. */
  switches = 0;

  constructor(
    private readonly config: SiteLimitConfig,
    private readonly deps: LoadManagerDeps,
  ) {
    this.control = { ...DEFAULT_CONTROL, ...config.control };
    this.pv = { ...DEFAULT_PV, ...config.pv };
  }

  /**
   * A site meter reading: A of the most loaded phase, or W/kW for the whole site. Its age is
   * counted from `arrivedAt` (now), never from the meter's own timestamp.
   */
  meterReading(value: number | null, arrivedAt = this.deps.now()): void {
    const meter = this.config.meter;
    if (!meter) return;
    if (value === null) {
      this.meter = undefined;
      this.estimator.reset();
      this.signedEstimator.reset();
    } else {
      const amps = meter.unit === 'A' ? value : (meter.unit === 'kW' ? value * 1000 : value) / this.config.voltage;
      // A current meter gives one value per phase; a power meter only the site total (one channel).
      this.meter = { channels: meter.unit === 'A' ? [amps, amps, amps] : [amps], at: arrivedAt };
      if (meter.includesChargers) {
        const { lo, hi } = drawBounds(this.deps.sessions().map((s) => this.draw(s)));
        const total = (t: PhaseTriple): number[] => (meter.unit === 'A' ? t : [t[0] + t[1] + t[2]]);
        this.estimator.update(this.meter.channels, total(lo), total(hi));
        this.signedEstimator.update(this.meter.channels, total(lo), total(hi));
      } else {
        const none = this.meter.channels.map(() => 0);
        this.estimator.update(this.meter.channels, none, none);
        this.signedEstimator.update(this.meter.channels, none, none);
      }
    }
    this.replan('site meter reading');
  }

  meterState(): MeterState {
    const meter = this.config.meter;
    if (!meter) return 'none';
    if (!this.meter || this.deps.now() - this.meter.at > meter.staleAfterMs) return 'stale';
    return 'fresh';
  }

  /** Forget what was applied to a session (it ended, or its charger reconnected). */
  forget(key: string): void {
    this.applied.delete(key);
    this.pausedSince.delete(key);
  }

  /**
   * An operator picked another charge mode for a session's connector: a decision, not an
   * oscillation, so the minimum pause no longer holds it, and pv starts its hysteresis afresh.
   */
  modeChanged(key: string, trigger: string): void {
    this.pausedSince.delete(key);
    this.pvStates.delete(key);
    this.replan(trigger);
  }

  appliedLimit(key: string): number | undefined {
    return this.applied.get(key)?.limitA;
  }

  /** Called every second or so: a round when increases or resumes are waiting for time to pass. */
  tick(): void {
    if (this.lastPlan?.waiting || [...this.pvStates.values()].some((p) => p.crossingSince !== undefined)) this.replan('waiting time passed');
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

  /** The car has followed its last limit: a report taken late enough after it (or long enough without one). */
  private settled(s: LoadSessionInput, now: number): boolean {
    const c = this.control;
    const cmd = this.applied.get(s.key);
    const drawn = Math.max(0, ...s.phases.map((p) => s.drawA[p]));
    if (!cmd) {
      // Never limited here: the car started at the charger's default (TxDefaultProfile: the minimum).
      if (s.reportedAt === undefined) return s.startedAt !== undefined && now - s.startedAt >= c.settleTimeoutMs;
      return s.startedAt === undefined || s.reportedAt >= s.startedAt + c.followMs;
    }
    if (s.reportedAt !== undefined && s.reportedAt > cmd.at) {
      // A decrease is followed as soon as a report shows the car below the new limit.
      if (cmd.limitA < (cmd.previousA ?? Infinity) && drawn <= cmd.limitA + c.toleranceA) return true;
      if (s.reportedAt >= cmd.at + c.followMs) return drawn <= cmd.limitA + c.toleranceA;
    }
    return now - cmd.at >= c.settleTimeoutMs;
  }

  private draw(s: LoadSessionInput): SessionDraw {
    return {
      phases: s.phases,
      reportA: s.reportedAt === undefined ? undefined : s.drawA,
      limitA: this.applied.get(s.key)?.limitA,
      maxA: Math.max(s.maxA, s.minA),
      settled: this.settled(s, this.deps.now()),
    };
  }

  /** Other load per phase from the estimate (a power meter's total spread evenly over the site's phases). */
  private otherLoadA(): PhaseTriple | undefined {
    const est = this.estimator.estimate;
    if (!est) return undefined;
    if (est.length === 3) return [est[0]!, est[1]!, est[2]!];
    const perPhase = est[0]! / this.config.sitePhases;
    return [perPhase, perPhase, perPhase];
  }

  private async round(trigger: string): Promise<void> {
    const c = this.control;
    const now = this.deps.now();
    const sessions = this.deps.sessions();
    const state = this.meterState();
    if (state === 'stale') {
      this.estimator.reset();
      this.signedEstimator.reset();
    }
    const otherLoadA = state === 'fresh' ? this.otherLoadA() : undefined;
    const surplus = this.surplus(sessions, state);
    const modal = this.applyModes(sessions, surplus, now);
    const plan = planLoad({
      siteLimitA: this.config.limitA,
      meterState: otherLoadA || state !== 'fresh' ? state : 'stale',
      fallbackA: this.config.fallbackA,
      marginA: this.config.marginA,
      resumeMarginA: c.resumeMarginA,
      otherLoadA,
      sessions: modal.map((s) => {
        const paused = this.applied.get(s.key)?.limitA === 0;
        const since = this.pausedSince.get(s.key);
        const holdPaused =
          paused && since !== undefined && now - since < c.minPauseMs
            ? `minimum pause, resumes no sooner than in ${Math.ceil((since + c.minPauseMs - now) / 1000)} s`
            : undefined;
        return { ...s, paused, holdPaused };
      }),
    });

    // What each session gets now: decreases at once, increases when the loop allows them.
    const byKey = new Map(sessions.map((s) => [s.key, s]));
    const unsettled = sessions.filter((s) => !this.settled(s, now)).length;
    let waiting: string | undefined;
    if (unsettled > 0) waiting = `increases wait until ${unsettled} car(s) followed their last limit`;
    else if (now < this.lastDecreaseAt + c.increaseHoldMs)
      waiting = `increases wait ${Math.ceil((this.lastDecreaseAt + c.increaseHoldMs - now) / 1000)} s after the last decrease`;
    const decreases: Allocation[] = [];
    const firsts: Allocation[] = [];
    const increases: Allocation[] = [];
    for (const a of plan.allocations) {
      const mode = byKey.get(a.key)?.mode;
      if (mode) a.mode = mode;
    }
    const inForce: Allocation[] = plan.allocations.map((a) => {
      const current = this.applied.get(a.key)?.limitA;
      if (current === a.limitA) return a;
      if (current === undefined) {
        // A new session runs at its TxDefaultProfile (the minimum), or at the charger's own
        // default if that was refused: its first limit goes out at once, no higher than the minimum.
        const first = Math.min(a.limitA, byKey.get(a.key)?.minA ?? a.limitA);
        const start = {
          ...a,
          limitA: first,
          paused: first === 0,
          reason: first < a.limitA ? `${a.reason}; starts at ${first} A, raised once the car follows` : a.reason,
        };
        firsts.push(start);
        return start;
      }
      if (a.limitA < current) {
        decreases.push(a);
        return a;
      }
      if (waiting) {
        return {
          ...a,
          limitA: current,
          paused: current === 0,
          reason: `${a.reason}; ${current} A until ${waiting.replace(/^increases wait /, '')} (target ${a.limitA} A)`,
        };
      }
      // From a pause straight to the minimum: less would not let the car charge at all.
      const step = Math.min(a.limitA, Math.max(current + c.rampStepA, byKey.get(a.key)?.minA ?? 0));
      const raised = {
        ...a,
        limitA: step,
        paused: step === 0,
        reason: step < a.limitA ? `${a.reason}; ramping by ${c.rampStepA} A (target ${a.limitA} A)` : a.reason,
      };
      increases.push(raised);
      return raised;
    });
    const pendingIncrease = inForce.some((a, i) => a.limitA < plan.allocations[i]!.limitA) || sessions.some((s) => this.pausedSince.has(s.key));
    const effective: Plan = {
      ...plan,
      allocations: inForce,
      allocatedA: sumPerPhase(inForce),
    };
    const stamped: LoadPlan = { ...effective, t: now, trigger, surplus, ...(pendingIncrease ? { waiting: waiting ?? 'raising step by step' } : {}) };
    this.lastPlan = stamped;
    this.plans++;
    this.deps.onPlan(stamped);

    let lowered = true;
    await Promise.all(
      [...decreases, ...firsts].map(async (a) => {
        if (!(await this.send(a))) lowered = false;
      }),
    );
    // The hold is for the site to show the effect of a cut; a session's first limit is no cut.
    if (decreases.length > 0) this.lastDecreaseAt = this.deps.now();
    // A decrease that did not happen leaves that charger at its old, higher limit: raising
    // anything now could exceed the site limit. The next round retries.
    if (!lowered) return;
    if (this.deps.betweenLowerAndRaise) await this.deps.betweenLowerAndRaise(effective);
    await Promise.all(increases.map((a) => this.send(a)));
  }

  /** Sends one limit; returns whether the charger took it. */
  private async send(a: Allocation): Promise<boolean> {
    const before = this.applied.get(a.key)?.limitA;
    try {
      await this.deps.apply(a.key, a.limitA);
    } catch (err) {
      // The charger keeps what it had (still recorded in `applied`), so the next round
      // retries the change; a charger never confirmed keeps no entry and is resent.
      this.deps.onError(a.key, err);
      return false;
    }
    const at = this.deps.now();
    this.applied.set(a.key, { limitA: a.limitA, at, previousA: before });
    if (a.limitA === 0 && before !== 0) {
      this.pausedSince.set(a.key, at);
      if (before !== undefined) this.switches++;
      this.deps.onSwitch?.(a.key, true, a.reason);
    } else if (a.limitA > 0 && before === 0) {
      this.pausedSince.delete(a.key);
      this.switches++;
      this.deps.onSwitch?.(a.key, false, a.reason);
    }
    return true;
  }

  /**
   * The PV surplus the minpv/pv sessions may use: export (negative other load, estimated like the
   * other load, from readings and draws taken together) minus what the other sessions draw at most.
   */
  private surplus(sessions: readonly LoadSessionInput[], state: MeterState): Surplus {
    const meter = this.config.meter;
    if (!meter) return { kind: 'none', reason: 'no site meter (loadManagement.meter)' };
    const est = this.signedEstimator.estimate;
    if (state !== 'fresh' || !est) return { kind: 'unknown', reason: 'site meter stale' };
    // A power meter: one channel, the site total in A; a current meter: per phase (balanced).
    const otherW = (meter.unit === 'A' ? Math.max(...est) * this.config.sitePhases : est[0]!) * this.config.voltage;
    const fixed = drawBounds(sessions.filter((s) => s.mode !== 'minpv' && s.mode !== 'pv').map((s) => this.draw(s))).hi;
    return { kind: 'measured', watts: Math.round(-(otherW + (fixed[0] + fixed[1] + fixed[2]) * this.config.voltage)) };
  }

  /** Sessions with their charge mode's cap folded into their maximum (never above it). */
  private applyModes(sessions: readonly LoadSessionInput[], surplus: Surplus, now: number): LoadSessionInput[] {
    const withMode = sessions.filter((s): s is LoadSessionInput & { mode: ChargeMode } => s.mode !== undefined);
    const { caps, states } = modeCaps({
      sessions: withMode.map((s) => ({ ...s, phaseCount: s.phases.length })),
      surplus,
      voltage: this.config.voltage,
      pv: this.pv,
      now,
      states: this.pvStates,
    });
    this.pvStates = states;
    return sessions.map((s) => {
      const cap = caps.get(s.key);
      // A session already at 0 (disabled, idTag refused) keeps that reason.
      if (!cap || cap.capA === undefined || s.maxA <= 0 || cap.capA > s.maxA) return s;
      return { ...s, maxA: cap.capA, capReason: cap.reason };
    });
  }
}

function sumPerPhase(allocations: readonly Allocation[]): PhaseTriple {
  const sum: PhaseTriple = [0, 0, 0];
  for (const a of allocations) for (const p of a.phases) sum[p] = Math.round((sum[p] + a.limitA) * 10) / 10;
  return sum;
}
