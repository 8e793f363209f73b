/**
 * Charge modes per connector, as evcc has them (docs.evcc.io, "loadpoints": mode off | now |
 * minpv | pv; enable/disable thresholds and delays): what the mode allows a session, before
 * the load manager shares the site limit. Pure: sessions, the PV surplus and the hysteresis
 * state in, caps with reasons and the next state out (time comes in as `now`).
 *
 * - off:   0 A. The session is paused; the car stays plugged in.
 * - now:   no cap from the mode: as much as the load manager gives (the site limit decides).
 * - minpv: the minimum current (IEC 61851-1: 6 A) at least, the surplus when it is more.
 * - pv:    the surplus only. Below the minimum it keeps the minimum for `disableDelayS`, then
 *          pauses; paused, it resumes once the surplus has stayed at the minimum plus
 *          `enableMarginA` for `enableDelayS` (hysteresis, so a passing cloud does not switch the car).
 *
 * The surplus is what the sessions in minpv/pv mode may use without importing from the grid:
 * the grid meter's export plus what those sessions draw themselves (their own draw is already
 * in the meter reading). Several such sessions take it in priority / arrival order. The cap only
 * ever lowers a session's maximum: the load manager's share of the site limit always wins.
 */

export const CHARGE_MODES = ['off', 'now', 'minpv', 'pv'] as const;
export type ChargeMode = (typeof CHARGE_MODES)[number];

export function isChargeMode(v: unknown): v is ChargeMode {
  return typeof v === 'string' && (CHARGE_MODES as readonly string[]).includes(v);
}

export interface PvConfig {
  /** Surplus at or above min + margin this long before a paused pv session resumes (evcc: enable delay 1 min). */
  enableDelayS: number;
  /** Surplus below the minimum this long before a pv session pauses (evcc: disable delay 3 min). */
  disableDelayS: number;
  /** A paused pv session resumes only when the surplus covers its minimum plus this (A per phase). */
  enableMarginA: number;
}

export const DEFAULT_PV: PvConfig = { enableDelayS: 60, disableDelayS: 180, enableMarginA: 1 };

/** What is known of the PV surplus. */
export type Surplus =
  /** Measured: watts the minpv/pv sessions may use without importing (negative: the site imports). */
  | { kind: 'measured'; watts: number }
  /** No measurement at all (no site meter): pv pauses at once, minpv charges at its minimum. */
  | { kind: 'none'; reason: string }
  /** The measurement is missing for now (meter stale): counted as no surplus, through the delays. */
  | { kind: 'unknown'; reason: string };

export interface ModeSession {
  key: string;
  mode: ChargeMode;
  /** Number of phases the session draws on (1 or 3). */
  phaseCount: number;
  minA: number;
  maxA: number;
  priority: number;
  order: number;
}

/** Hysteresis state of a session in pv mode. */
export interface PvState {
  /** Charging from the surplus (false: paused by the pv mode). */
  enabled: boolean;
  /** Since when the surplus has been on the side of its threshold that would switch `enabled`. */
  crossingSince?: number;
}

export interface ModeCap {
  /** The most the mode allows (A per phase); undefined: no cap (now). */
  capA: number | undefined;
  /** Why, for the plan's reasons (undefined for now). */
  reason?: string;
}

export interface ModeInput {
  sessions: readonly ModeSession[];
  surplus: Surplus;
  voltage: number;
  pv: PvConfig;
  now: number;
  /** The pv states of the last round, by session key. */
  states: ReadonlyMap<string, PvState>;
}

export interface ModeOutput {
  caps: Map<string, ModeCap>;
  /** The pv states for the next round (only sessions in pv mode). */
  states: Map<string, PvState>;
}

const kw = (w: number): string => `${(w / 1000).toFixed(1)} kW`;

/** Whole amperes: a surplus that wobbles by a few watts does not send a new limit every second. */
const wholeA = (a: number): number => Math.max(0, Math.floor(a + 1e-9));

export function modeCaps(input: ModeInput): ModeOutput {
  const { surplus, voltage, pv, now } = input;
  const caps = new Map<string, ModeCap>();
  const states = new Map<string, PvState>();
  let poolW = surplus.kind === 'measured' ? surplus.watts : 0;
  const ordered = [...input.sessions].sort((a, b) => b.priority - a.priority || a.order - b.order || (a.key < b.key ? -1 : 1));
  for (const s of ordered) {
    const wattsPerA = voltage * Math.max(1, s.phaseCount);
    const availableW = Math.max(0, poolW);
    const shareA = wholeA(availableW / wattsPerA);
    const take = (capA: number): void => {
      poolW -= Math.min(capA, shareA) * wattsPerA;
    };
    if (s.mode === 'now') {
      caps.set(s.key, { capA: undefined });
      continue;
    }
    if (s.mode === 'off') {
      caps.set(s.key, { capA: 0, reason: 'charge mode off' });
      continue;
    }
    if (s.mode === 'minpv') {
      if (surplus.kind !== 'measured') {
        caps.set(s.key, { capA: s.minA, reason: `min+PV: minimum ${s.minA} A (no surplus measurement: ${surplus.reason})` });
        continue;
      }
      const capA = Math.min(s.maxA, Math.max(s.minA, shareA));
      take(capA);
      caps.set(s.key, {
        capA,
        reason: shareA > s.minA ? `min+PV: surplus ${kw(availableW)} → ${capA} A` : `min+PV: minimum ${s.minA} A (surplus ${kw(availableW)}, ${shareA} A)`,
      });
      continue;
    }
    // pv
    if (surplus.kind === 'none') {
      caps.set(s.key, { capA: 0, reason: `PV: no surplus measurement (${surplus.reason})` });
      states.set(s.key, { enabled: false });
      continue;
    }
    const seen = surplus.kind === 'measured' ? `surplus ${kw(availableW)} (${shareA} A)` : `no surplus measurement (${surplus.reason})`;
    /** "surplus 1.2 kW (1 A) below …", or only that there is no measurement. */
    const below = (what: string): string => (surplus.kind === 'measured' ? `${seen} below ${what}` : seen);
    const previous = input.states.get(s.key);
    const resumeA = s.minA + pv.enableMarginA;
    // A session new to pv mode charges at once when the surplus already covers min + margin.
    const state: PvState = previous ? { ...previous } : { enabled: shareA >= resumeA };
    let capA: number;
    let reason: string;
    if (state.enabled) {
      if (shareA >= s.minA) {
        state.crossingSince = undefined;
        capA = Math.min(s.maxA, shareA);
        reason = `PV: ${seen} → ${capA} A`;
      } else {
        state.crossingSince ??= now;
        const left = state.crossingSince + pv.disableDelayS * 1000 - now;
        if (left <= 0) {
          state.enabled = false;
          state.crossingSince = undefined;
          capA = 0;
          reason = `PV: ${below(`the minimum ${s.minA} A`)} for ${pv.disableDelayS} s`;
        } else {
          capA = s.minA;
          reason = `PV: ${below(`the minimum ${s.minA} A`)}; keeps ${s.minA} A, pauses in ${Math.ceil(left / 1000)} s`;
        }
      }
    } else if (shareA >= resumeA) {
      state.crossingSince ??= now;
      const left = state.crossingSince + pv.enableDelayS * 1000 - now;
      if (left <= 0) {
        state.enabled = true;
        state.crossingSince = undefined;
        capA = Math.min(s.maxA, shareA);
        reason = `PV: ${seen} → ${capA} A (resumed after ${pv.enableDelayS} s above ${resumeA} A)`;
      } else {
        capA = 0;
        reason = `PV: ${seen}; resumes in ${Math.ceil(left / 1000)} s if it stays at ${resumeA} A or more`;
      }
    } else {
      state.crossingSince = undefined;
      capA = 0;
      reason = `PV: ${below(`${resumeA} A (minimum + margin)`)}`;
    }
    take(capA);
    states.set(s.key, state);
    caps.set(s.key, { capA, reason });
  }
  return { caps, states };
}

/**
 * The fixed limit of a mode when no load management runs (no surplus measurement, no site
 * limit): off 0 A, now no cap, minpv the minimum, pv 0 A (no surplus known).
 */
export function unmanagedModeCapA(mode: ChargeMode, minA: number): number {
  if (mode === 'off' || mode === 'pv') return 0;
  if (mode === 'minpv') return minA;
  return Infinity;
}
