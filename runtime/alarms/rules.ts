// What a rule decides about one subject (a datapoint, an adapter), step by step, with the
// time handed in: no clock, timer or I/O here, so the rules are tested with a fake clock
// (test/alarms/rules.test.ts). The engine (engine.ts) keeps one RuleConditions per rule and
// turns its subjects' states into the rule's alarm.
import { compileGlobs, isGlob } from '../../core/glob.js';
import type { AdapterRule, AlarmRule, StaleRule, ThresholdRule } from './config.js';

/**
 * One subject of a rule: `normal`, `pending` (beyond the limit, or down, and waiting out
 * `forS`), `active` (raised). `since` is when the current state began.
 */
export interface Condition {
  state: 'normal' | 'pending' | 'active';
  since: number;
  /** Threshold: the reading that put it beyond the limit; stale: the newest reading's time. */
  value?: number;
  /** Stale: the measurement time of the newest good reading (or when watching began). */
  lastT?: number;
}

/** A subject whose alarm state changed: raised or cleared. */
export type Transition = { key: string; to: 'active' | 'normal' };

/** Where a reading is against a threshold rule: beyond the limit, in the deadband, or back inside. */
export function thresholdZone(rule: Pick<ThresholdRule, 'above' | 'below' | 'hysteresis'>, v: number): 'beyond' | 'deadband' | 'inside' {
  if ((rule.above !== undefined && v > rule.above) || (rule.below !== undefined && v < rule.below)) return 'beyond';
  const h = rule.hysteresis;
  const insideAbove = rule.above === undefined || v <= rule.above - h;
  const insideBelow = rule.below === undefined || v >= rule.below + h;
  return insideAbove && insideBelow ? 'inside' : 'deadband';
}

/** A reading as a number for a threshold: numbers, booleans as 1 / 0; anything else is not compared. */
export function numeric(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return undefined;
}

/** Adapter states that count as down (runtime/adapter-host.ts AdapterState). */
const DOWN = new Set(['error', 'failed']);
/** States between retries of a down adapter: it stays down until it runs again. */
const RETRYING = new Set(['starting']);

/**
 * The subjects of one rule and their conditions. Bounded by what it watches: the datapoints
 * its pattern matches (the registry is bounded) or the configured adapters.
 */
export class RuleConditions {
  readonly conditions = new Map<string, Condition>();
  /** Datapoint rules: does an id belong to this rule? Precompiled once (core/glob.ts). */
  readonly matches: (id: string) => boolean;
  readonly glob: boolean;

  constructor(readonly rule: AlarmRule) {
    if (rule.type === 'adapter') {
      this.glob = rule.adapter === '*';
      this.matches = this.glob ? () => true : (id) => id === rule.adapter;
    } else {
      this.glob = isGlob(rule.datapoint);
      const literal = rule.datapoint;
      this.matches = this.glob ? compileGlobs([rule.datapoint]) : (id) => id === literal;
    }
  }

  /** The subjects raised now, oldest first. */
  activeKeys(): string[] {
    return [...this.conditions].filter(([, c]) => c.state === 'active').map(([k]) => k);
  }

  /** Sets a subject active (an alarm restored after a restart). */
  restoreActive(key: string, since: number): void {
    const c = this.conditions.get(key);
    if (c) {
      c.state = 'active';
      c.since = since;
    } else this.conditions.set(key, { state: 'active', since, ...(this.rule.type === 'stale' ? { lastT: since } : {}) });
  }

  /** Starts watching a datapoint of a stale rule; `lastT` is its newest stored reading, or now. */
  watch(key: string, lastT: number, now: number): void {
    if (this.rule.type !== 'stale' || this.conditions.has(key)) return;
    this.conditions.set(key, { state: 'normal', since: now, lastT });
  }

  /** A reading of a matching datapoint. */
  onReading(key: string, reading: { v: unknown; t: number; q?: string }, now: number): Transition | undefined {
    const rule = this.rule;
    if (rule.type === 'threshold') return this.thresholdReading(rule, key, reading, now);
    if (rule.type === 'stale') return this.staleReading(rule, key, reading, now);
    return undefined;
  }

  private thresholdReading(rule: ThresholdRule, key: string, reading: { v: unknown; q?: string }, now: number): Transition | undefined {
    // A stale or bad reading says nothing about the value (v is null): the state stays.
    if (reading.q !== undefined) return undefined;
    const v = numeric(reading.v);
    if (v === undefined) return undefined;
    const zone = thresholdZone(rule, v);
    let c = this.conditions.get(key);
    if (!c) {
      if (zone !== 'beyond') return undefined; // nothing to remember about a datapoint inside its limits
      c = { state: 'normal', since: now };
      this.conditions.set(key, c);
    }
    switch (c.state) {
      case 'normal':
        if (zone !== 'beyond') return this.forget(key);
        c.value = v;
        if (rule.forS === 0) return this.set(key, c, 'active', now);
        c.state = 'pending';
        c.since = now;
        return undefined;
      case 'pending':
        // The delay needs the reading beyond the limit all along: back inside (or in the deadband) starts it again.
        if (zone !== 'beyond') return this.forget(key);
        c.value = v;
        return now - c.since >= rule.forS * 1000 ? this.set(key, c, 'active', now) : undefined;
      case 'active':
        if (zone === 'beyond') c.value = v;
        if (zone !== 'inside') return undefined; // the deadband holds it
        this.conditions.delete(key);
        return { key, to: 'normal' };
    }
  }

  private staleReading(rule: StaleRule, key: string, reading: { t: number; q?: string }, now: number): Transition | undefined {
    let c = this.conditions.get(key);
    if (!c) {
      c = { state: 'normal', since: now, lastT: reading.t };
      this.conditions.set(key, c);
    }
    // A reading the adapter marks stale or bad is no sign of life of the measurement.
    if (reading.q !== undefined) return undefined;
    c.lastT = Math.max(c.lastT ?? reading.t, reading.t);
    if (c.state === 'active' && now - c.lastT <= rule.afterS * 1000) return this.set(key, c, 'normal', now);
    return undefined;
  }

  /** An adapter's state, as its status says (runtime/adapter-host.ts). */
  onAdapterState(key: string, state: string, now: number): Transition | undefined {
    const rule = this.rule;
    if (rule.type !== 'adapter') return undefined;
    const c = this.conditions.get(key);
    if (DOWN.has(state)) {
      if (c) return undefined; // already down (a retry failing again): the delay runs from the first failure
      const fresh: Condition = { state: 'pending', since: now };
      this.conditions.set(key, fresh);
      return rule.forS === 0 ? this.set(key, fresh, 'active', now) : undefined;
    }
    if (RETRYING.has(state)) return undefined;
    // running, stopping, stopped, disabled: not down (a stop is no fault).
    if (!c) return undefined;
    this.conditions.delete(key);
    return c.state === 'active' ? { key, to: 'normal' } : undefined;
  }

  /** The timer's turn: delays that ran out, datapoints that went stale. */
  tick(now: number): Transition[] {
    const out: Transition[] = [];
    const rule = this.rule;
    for (const [key, c] of this.conditions) {
      if (rule.type === 'stale') {
        if (c.state === 'normal' && now - (c.lastT ?? c.since) > rule.afterS * 1000) out.push(this.set(key, c, 'active', now));
      } else if (c.state === 'pending' && now - c.since >= delayOf(rule) * 1000) out.push(this.set(key, c, 'active', now));
    }
    return out;
  }

  /** Stops watching a subject (a deleted datapoint); a raised one is cleared. */
  drop(key: string): Transition | undefined {
    const c = this.conditions.get(key);
    this.conditions.delete(key);
    return c?.state === 'active' ? { key, to: 'normal' } : undefined;
  }

  private set(key: string, c: Condition, to: 'active' | 'normal', now: number): Transition {
    c.state = to;
    c.since = now;
    return { key, to };
  }

  private forget(key: string): undefined {
    this.conditions.delete(key);
    return undefined;
  }
}

function delayOf(rule: ThresholdRule | AdapterRule): number {
  return rule.forS;
}

/** What a rule checks, in words, for the default message and the Alarms page. */
export function describeRule(rule: AlarmRule): string {
  switch (rule.type) {
    case 'threshold': {
      const limits = [rule.above !== undefined ? `above ${rule.above}` : '', rule.below !== undefined ? `below ${rule.below}` : '']
        .filter(Boolean)
        .join(' or ');
      const extra = [rule.hysteresis ? `hysteresis ${rule.hysteresis}` : '', rule.forS ? `for ${rule.forS} s` : ''].filter(Boolean).join(', ');
      return `${rule.datapoint} ${limits}${extra ? ` (${extra})` : ''}`;
    }
    case 'stale':
      return `${rule.datapoint}: no reading for ${rule.afterS} s`;
    case 'adapter':
      return `${rule.adapter === '*' ? 'any adapter' : `adapter ${rule.adapter}`} in error or failed${rule.forS ? ` for ${rule.forS} s` : ''}`;
  }
}

/** `site.grid.power is 16234: above 15000` — what broke the rule, for a rule without its own message. */
export function defaultMessage(rule: AlarmRule, active: string[], value: number | undefined): string {
  const who = active.length > 1 ? `${active[0]} and ${active.length - 1} more` : (active[0] ?? '');
  switch (rule.type) {
    case 'threshold': {
      const limit = value !== undefined && rule.above !== undefined && value > rule.above ? `above ${rule.above}` : `below ${rule.below}`;
      return `${who} is ${value ?? '?'}: ${limit}`;
    }
    case 'stale':
      return `${who}: no reading for ${rule.afterS} s`;
    case 'adapter':
      return `adapter ${who} in error or failed${rule.forS ? ` for ${rule.forS} s` : ''}`;
  }
}
