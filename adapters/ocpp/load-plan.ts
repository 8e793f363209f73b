/**
 * The plan of site load management: shares what the site can give EV charging among sessions.
 *
 * `planLoad` is pure (inputs → plan with reasons), so it can be property-tested; the
 * `LoadManager` (load-manager.ts) feeds it the other-load estimate (load-estimate.ts) and
 * applies the result with its timing rules.
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
  /**
   * Paused by the last plan applied. A paused session resumes only when its minimum plus
   * `resumeMarginA` fits, so a share hovering around 6 A does not flip it on and off.
   */
  paused?: boolean;
  /** Paused and not to resume yet (its minimum pause time runs): the reason. */
  holdPaused?: string;
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
  /** A paused session resumes only when its minimum plus this fits (A, default 0). */
  resumeMarginA?: number;
  sessions: readonly LoadSession[];
}

export interface Allocation {
  key: string;
  limitA: number;
  phases: PhaseIndex[];
  paused: boolean;
  reason: string;
  /** The session's charge mode (charge-modes.ts), set by the load manager for sessions that have one. */
  mode?: 'off' | 'now' | 'minpv' | 'pv';
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
    if (s.holdPaused) {
      grant.set(s.key, 0);
      why.set(s.key, `paused: ${s.holdPaused}`);
      continue;
    }
    // Hysteresis: resuming needs the margin on top of the minimum; staying on needs the minimum.
    const needed = s.paused ? min + toDeci(input.resumeMarginA ?? 0) : min;
    const short = s.phases.find((p) => used[p] + needed > avail[p]);
    if (short !== undefined) {
      grant.set(s.key, 0);
      const left = fromDeci(Math.max(0, avail[short] - used[short]));
      why.set(
        s.key,
        s.paused
          ? `paused: resumes with ${fromDeci(needed)} A (minimum + margin), ${left} A left on ${phaseName(short)}`
          : `paused: needs ${s.minA} A, only ${left} A left on ${phaseName(short)}`,
      );
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
