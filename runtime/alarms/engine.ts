import type { Clock } from '../../core/clock.js';
import type { Datapoint, DatapointInput, ValueMessage } from '../../core/datapoint.js';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import type { Bus } from '../bus.js';
import type { Logger } from '../log.js';
import type { Topics } from '../topics.js';
import type { AlarmRule, AlarmsConfig, AlarmSeverity } from './config.js';
import { ALARM_ID } from './config.js';
import './errors.js';
import type { EventLog } from './event-log.js';
import { defaultMessage, describeRule, RuleConditions } from './rules.js';
import { AlarmWriter } from './writer.js';
import { ALARM_DATAPOINT_PREFIX, ALARM_OWNER, alarmDatapoint, type AlarmState, byUrgency, MAX_SUBJECTS, parseStoredAlarm, type AlarmValue } from './state.js';

export interface AlarmEngineDeps {
  config: AlarmsConfig;
  clock: Clock;
  log: Logger;
  events: Pick<EventLog, 'add'>;
  /** The datapoint registry (runtime/datapoints/registry.ts). */
  datapoints: {
    get(id: string): Datapoint | undefined;
    list(): Datapoint[];
    registerMany(inputs: ReadonlyArray<DatapointInput & { adapter: string }>): Promise<Datapoint[]>;
    register(input: DatapointInput & { adapter: string }): Promise<Datapoint>;
    onChange(listener: (dp: Datapoint) => void): () => void;
  };
  /** A datapoint's newest stored reading (store.latest). */
  latest(id: string): ValueMessage | undefined;
  /** Stores and publishes an alarm datapoint's value (ingest.accept): resolves once durable. */
  publish(id: string, v: AlarmValue): Promise<void>;
  /** Live readings and adapter statuses; without them the caller feeds `observe` / `observeAdapter`. */
  bus?: Pick<Bus, 'subscribe'>;
  topics?: Topics;
  /** The timer's period (default 1 s): stale datapoints and `forS` delays are this exact. */
  tickMs?: number;
}

/** Alarms Node-RED may raise, at most (each is a datapoint, kept across restarts). */
export const MAX_FLOW_ALARMS = 200;
/** Ids remembered with the rules matching them; cleared past this (the registry bounds ids anyway). */
const MAX_MATCH_CACHE = 100_000;
const NO_RULES: readonly RuleConditions[] = [];
/** Adapters have registered their datapoints by then: a rule matching none is named once. */
const UNMATCHED_AFTER_MS = 60_000;

/** An alarm on the API: its state and, for rule alarms, what the rule checks. */
export interface AlarmView extends AlarmState {
  rule?: string;
}

/**
 * The alarm engine (issue 24): evaluates the configured rules on every reading of a matching
 * datapoint (subscribed on the bus after ingest stored it, so the ingest path never waits for
 * it; the rules of an id are found once and cached, O(rules matching that id) per reading), and
 * on a timer for stale datapoints, adapters down and `forS` delays. Node-RED raises and clears
 * alarms of its own through `raise` / `clear`. Every alarm is published as the datapoint
 * `alarm.<id>` (stored, shown live, sent upstream first: `alarm.*` is a default
 * `sync.fallback.alarms` pattern); raise, clear and acknowledge are written to the event log.
 */
export class AlarmEngine {
  private readonly rules = new Map<string, RuleConditions>();
  private readonly datapointRules: RuleConditions[] = [];
  private readonly adapterRules: RuleConditions[] = [];
  private readonly matchCache = new Map<string, readonly RuleConditions[]>();
  private readonly alarms = new Map<string, AlarmState>();
  private readonly writer: AlarmWriter;
  private readonly undo: Array<() => unknown> = [];
  private readonly stopping = new AbortController();
  private loop: Promise<void> | undefined;
  private startedAt = 0;
  private matchesChecked = false;

  constructor(private readonly o: AlarmEngineDeps) {
    this.writer = new AlarmWriter({
      datapoints: o.datapoints,
      publish: o.publish,
      log: o.log,
      state: (id) => this.alarms.get(id),
      definition: (a) => this.definition(a),
    });
    for (const rule of o.config.rules) {
      const rc = new RuleConditions(rule);
      this.rules.set(rule.id, rc);
      (rule.type === 'adapter' ? this.adapterRules : this.datapointRules).push(rc);
    }
  }

  /** Restores the alarms from their datapoints, registers the rules' datapoints, subscribes and starts the timer. */
  async start(): Promise<void> {
    const now = this.o.clock.now();
    this.startedAt = now;
    this.restore(now);
    await this.registerRuleDatapoints();
    // Initial states and what the restore changed (rules changed or removed meanwhile).
    this.writer.release();
    for (const rc of this.datapointRules) this.watchExisting(rc, now);
    this.undo.push(this.o.datapoints.onChange((dp) => this.onDatapoint(dp)));
    const { bus, topics } = this.o;
    if (bus && topics) {
      const valueHead = `${topics.prefix}/dp/`;
      // No datapoint rule: no subscriber on the readings at all.
      if (this.datapointRules.length > 0)
        this.undo.push(
          await bus.subscribe(`${topics.prefix}/dp/+/value`, (topic, payload) => {
            const id = topic.slice(valueHead.length, -'/value'.length);
            if (this.rulesFor(id).length === 0) return;
            const msg = parseReading(payload);
            if (msg) this.observe(id, msg);
          }),
        );
      if (this.adapterRules.length > 0) {
        const statusHead = `${topics.prefix}/adapter/`;
        this.undo.push(
          await bus.subscribe(`${topics.prefix}/adapter/+/status`, (topic, payload) => {
            const state = parseReading(payload)?.state;
            if (typeof state === 'string') this.observeAdapter(topic.slice(statusHead.length, -'/status'.length), state);
          }),
        );
      }
    }
    const tickMs = this.o.tickMs ?? 1000;
    this.loop = (async () => {
      const signal = this.stopping.signal;
      while (!signal.aborted) {
        try {
          await this.o.clock.sleep(tickMs, signal);
        } catch (err) {
          if (signal.aborted) return;
          throw err;
        }
        try {
          this.evaluate();
        } catch (err) {
          // A fault in one turn must not stop the timer (stale and delayed alarms depend on it).
          this.o.log.error({ err }, 'alarm evaluation failed');
        }
      }
    })();
  }

  /** Stops the timer and subscriptions and stores what is pending. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop?.catch((err: unknown) => this.o.log.error({ err }, 'alarm timer failed'));
    for (const undo of this.undo.splice(0)) await undo();
    await this.flush();
  }

  /** Resolves once every state change so far is stored (or failed, then retried at the next tick). */
  async flush(): Promise<void> {
    await this.writer.flush();
  }

  /** A reading of datapoint `id` (from the bus; tests call it directly). */
  observe(id: string, msg: { v: unknown; t: number; q?: string }): void {
    const now = this.o.clock.now();
    for (const rc of this.rulesFor(id)) {
      if (rc.onReading(id, msg, now)) this.settle(rc, now);
    }
  }

  /** An adapter's state (from its status topic; tests call it directly). */
  observeAdapter(adapter: string, state: string): void {
    const now = this.o.clock.now();
    for (const rc of this.adapterRules) {
      if (rc.matches(adapter) && rc.onAdapterState(adapter, state, now)) this.settle(rc, now);
    }
  }

  /** The timer's turn: delays and staleness, datapoints deleted meanwhile, states not stored yet. */
  evaluate(): void {
    const now = this.o.clock.now();
    for (const rc of this.rules.values()) {
      let changed = rc.tick(now).length > 0;
      // A datapoint of a glob deleted meanwhile is no longer watched (deleting while iterating a Map is safe).
      if (rc.rule.type === 'stale' && rc.glob) for (const key of rc.conditions.keys()) if (!this.o.datapoints.get(key) && rc.drop(key)) changed = true;
      if (changed) this.settle(rc, now);
    }
    if (!this.matchesChecked && now - this.startedAt >= UNMATCHED_AFTER_MS) {
      this.matchesChecked = true;
      this.reportUnmatched();
    }
    this.writer.retry();
  }

  /** Every alarm, newest raise first within severity; rule alarms say what their rule checks. */
  list(): AlarmView[] {
    return [...this.alarms.values()].sort(byUrgency).map((a) => {
      const rc = this.rules.get(a.id);
      return rc && a.source === 'rule' ? { ...a, rule: describeRule(rc.rule) } : { ...a };
    });
  }

  /** The configured rules, with whether each is raised now. */
  ruleList(): Array<{ id: string; type: AlarmRule['type']; severity: AlarmSeverity; description: string; message?: string; active: boolean }> {
    return [...this.rules.values()].map(({ rule }) => ({
      id: rule.id,
      type: rule.type,
      severity: rule.severity,
      description: describeRule(rule),
      ...(rule.message ? { message: rule.message } : {}),
      active: this.alarms.get(rule.id)?.active ?? false,
    }));
  }

  get(id: string): AlarmState | undefined {
    const a = this.alarms.get(id);
    return a ? { ...a } : undefined;
  }

  /**
   * An operator acknowledges an alarm (active, or cleared without acknowledgement): recorded
   * in the event log and stored before this resolves. `stored: false` when storage refused
   * the write (read-only): it is retried, the acknowledgement holds meanwhile.
   */
  async acknowledge(id: string, by: string): Promise<{ alarm: AlarmState; stored: boolean }> {
    const a = this.alarms.get(id);
    if (!a) throw new OutpostError('ALARM_UNKNOWN', `no alarm "${id}" (GET /api/alarms lists them)`);
    if (a.raisedAt === undefined) throw new OutpostError('ALARM_NOT_RAISED', `alarm "${id}" has never been raised`);
    if (a.acknowledged) {
      throw new OutpostError('ALARM_ACKNOWLEDGED', `alarm "${id}" was acknowledged by ${a.ackedBy ?? 'someone'} at ${new Date(a.ackedAt ?? 0).toISOString()}`);
    }
    const now = this.o.clock.now();
    Object.assign(a, { acknowledged: true, ackedBy: by, ackedAt: now });
    this.record(a, 'alarm.acknowledged', 'info', `${a.message}: acknowledged by ${by}`, { by });
    this.changed(a);
    await this.flush();
    return { alarm: { ...a }, stored: this.writer.stored(id) };
  }

  /**
   * Node-RED raises an alarm of its own (`outpost alarm` node): created on first raise as
   * `alarm.<id>`, refused for an id a configured rule owns. Raising an active alarm again
   * with another message or severity updates it (no new raise, no new acknowledgement needed).
   */
  async raise(input: { id: string; severity: AlarmSeverity; message?: string; by: string }): Promise<AlarmState> {
    const a = await this.flowsAlarm(input.id);
    const now = this.o.clock.now();
    const message = input.message?.trim() ? input.message.trim().slice(0, 200) : a.message;
    if (a.active) {
      if (a.message === message && a.severity === input.severity) return { ...a };
      Object.assign(a, { message, severity: input.severity, by: input.by });
    } else {
      Object.assign(a, { message, severity: input.severity, by: input.by, active: true, since: now, raisedAt: now, acknowledged: false });
      delete a.clearedAt;
      delete a.ackedBy;
      delete a.ackedAt;
      this.record(a, 'alarm.raised', a.severity, a.message, { by: input.by });
    }
    this.changed(a);
    await this.flush();
    return { ...a };
  }

  /** Node-RED clears its alarm; one never raised (or already clear) is left as it is. */
  async clear(id: string, by: string): Promise<AlarmState | undefined> {
    if (typeof id !== 'string' || !ALARM_ID.test(id))
      throw new OutpostError('ALARM_INVALID', `alarm id ${JSON.stringify(id)} is not valid: lower-case letters, digits, _ . - (at most 64)`);
    if (this.rules.has(id)) throw new OutpostError('ALARM_OWNED', `alarm "${id}" belongs to the configured rule "${id}": flows cannot clear it`);
    const a = this.alarms.get(id);
    if (!a?.active) return a ? { ...a } : undefined;
    const now = this.o.clock.now();
    Object.assign(a, { active: false, since: now, clearedAt: now, by });
    this.record(a, 'alarm.cleared', 'info', `${a.message}: cleared`, { by });
    this.changed(a);
    await this.flush();
    return { ...a };
  }

  /** A flows alarm by id, created (its datapoint registered) on first use. */
  private async flowsAlarm(id: string): Promise<AlarmState> {
    if (typeof id !== 'string' || !ALARM_ID.test(id))
      throw new OutpostError('ALARM_INVALID', `alarm id ${JSON.stringify(id)} is not valid: lower-case letters, digits, _ . - (at most 64)`);
    if (this.rules.has(id)) throw new OutpostError('ALARM_OWNED', `alarm "${id}" belongs to the configured rule "${id}": give the flow's alarm another id`);
    const existing = this.alarms.get(id);
    if (existing) return existing;
    const flows = [...this.alarms.values()].filter((a) => a.source === 'flows').length;
    if (flows >= MAX_FLOW_ALARMS)
      throw new OutpostError('ALARM_LIMIT', `flows have raised ${flows} different alarms already (at most ${MAX_FLOW_ALARMS}): reuse ids`);
    const now = this.o.clock.now();
    const a: AlarmState = { id, source: 'flows', severity: 'alarm', message: `alarm ${id}`, active: false, since: now, acknowledged: false };
    if (!(await this.writer.register(a)))
      throw new OutpostError('DP_CONFLICT', `datapoint ${alarmDatapoint(id)} belongs to someone else: give the alarm another id`);
    // Created meanwhile by a concurrent raise of the same id: that one is the alarm.
    const again = this.alarms.get(id);
    if (again) return again;
    this.alarms.set(id, a);
    return a;
  }

  /** Rules whose datapoint is not registered (or whose glob matches none) a minute after start: a typo, or a device that never came. */
  private reportUnmatched(): void {
    const ids = this.o.datapoints
      .list()
      .filter((dp) => dp.adapter !== ALARM_OWNER)
      .map((dp) => dp.id);
    for (const rc of this.datapointRules) {
      const rule = rc.rule as Exclude<AlarmRule, { type: 'adapter' }>;
      if (ids.some((id) => rc.matches(id))) continue;
      const message = `alarm rule ${rule.id}: ${rule.datapoint} ${rc.glob ? 'matches no datapoint' : 'is not a datapoint'} on this gateway`;
      this.o.log.warn({ rule: rule.id, datapoint: rule.datapoint }, 'alarm rule matches no datapoint');
      this.o.events.add(
        { source: 'alarms', kind: 'rule.unmatched', severity: 'warning', message, data: { rule: rule.id } },
        `alarms|rule.unmatched|${rule.id}`,
      );
    }
  }

  /** Which rules a datapoint's readings go to; found once per id. Alarm datapoints go to none (no rule on its own output). */
  private rulesFor(id: string): readonly RuleConditions[] {
    const cached = this.matchCache.get(id);
    if (cached) return cached;
    if (this.matchCache.size >= MAX_MATCH_CACHE) this.matchCache.clear();
    const own = id.startsWith(ALARM_DATAPOINT_PREFIX) && this.o.datapoints.get(id)?.adapter === ALARM_OWNER;
    const found = own ? NO_RULES : this.datapointRules.filter((rc) => rc.matches(id));
    const rules = found.length === 0 ? NO_RULES : found;
    this.matchCache.set(id, rules);
    return rules;
  }

  /** A datapoint registered or changed: stale rules start watching a new one (with its stored newest reading). */
  private onDatapoint(dp: Datapoint): void {
    this.matchCache.delete(dp.id);
    if (dp.adapter === ALARM_OWNER) return;
    const now = this.o.clock.now();
    for (const rc of this.rulesFor(dp.id)) if (rc.rule.type === 'stale') rc.watch(dp.id, this.freshness(dp.id), now);
  }

  /**
   * A stale rule's clock for a datapoint: its newest reading, but not before this start, so
   * a restart gives every datapoint `afterS` to report before it counts as stale (no alarm
   * storm at each start; an alarm that was active stays active, restored).
   */
  private freshness(id: string): number {
    return Math.max(this.o.latest(id)?.t ?? 0, this.startedAt);
  }

  private watchExisting(rc: RuleConditions, now: number): void {
    const rule = rc.rule;
    if (rule.type !== 'stale') return;
    if (!rc.glob) rc.watch(rule.datapoint, this.freshness(rule.datapoint), now);
    else for (const dp of this.o.datapoints.list()) if (this.rulesFor(dp.id).includes(rc)) rc.watch(dp.id, this.freshness(dp.id), now);
  }

  /** Alarms from their stored values; rule alarms without a stored value start cleared. */
  private restore(now: number): void {
    for (const dp of this.o.datapoints.list()) {
      if (dp.adapter !== ALARM_OWNER || !dp.id.startsWith(ALARM_DATAPOINT_PREFIX)) continue;
      const id = dp.id.slice(ALARM_DATAPOINT_PREFIX.length);
      const latest = this.o.latest(dp.id);
      if (!latest) continue;
      const state = parseStoredAlarm(id, latest.v);
      if (!state) {
        this.o.log.warn({ datapoint: dp.id }, 'stored alarm state is not readable: the alarm starts cleared');
        continue;
      }
      this.alarms.set(id, state);
    }
    for (const [id, rc] of this.rules) {
      const rule = rc.rule;
      const restored = this.alarms.get(id);
      const description = describeRule(rule);
      if (restored?.source !== 'rule') {
        this.alarms.set(id, {
          id,
          source: 'rule',
          type: rule.type,
          severity: rule.severity,
          message: rule.message ?? description,
          active: false,
          since: now,
          acknowledged: false,
        });
        this.writer.changed(id);
        continue;
      }
      // The rule may have changed since: its severity and type apply; an active alarm keeps its message.
      if (restored.severity !== rule.severity || restored.type !== rule.type) this.writer.changed(id);
      Object.assign(restored, { severity: rule.severity, type: rule.type });
      if (!restored.active) restored.message = rule.message ?? description;
      else for (const subject of restored.subjects ?? []) if (rc.matches(subject)) rc.restoreActive(subject, restored.raisedAt ?? now);
      if (restored.active && rc.activeKeys().length === 0) this.clearAlarm(restored, now, 'the rule no longer matches what raised it');
    }
    for (const a of this.alarms.values()) {
      if (a.source === 'rule' && !this.rules.has(a.id) && a.active) this.clearAlarm(a, now, 'its rule was removed from the configuration');
    }
  }

  /** The definition of an alarm's datapoint. */
  private definition(a: AlarmState): DatapointInput & { adapter: string } {
    const rule = this.rules.get(a.id)?.rule;
    return {
      id: alarmDatapoint(a.id),
      adapter: ALARM_OWNER,
      kind: 'sensor',
      type: 'json',
      description: rule ? `alarm: ${rule.message ?? describeRule(rule)}`.slice(0, 1024) : 'alarm raised from Node-RED',
      meta: { alarm: rule ? { source: 'rule', type: rule.type, severity: rule.severity } : { source: 'flows' } },
    };
  }

  /** The rules' datapoints in one durable write; what fails here is registered one by one when first stored (drain). */
  private async registerRuleDatapoints(): Promise<void> {
    const inputs = [...this.rules.keys()].map((id) => this.definition(this.alarms.get(id)!));
    if (inputs.length === 0) return;
    try {
      await this.o.datapoints.registerMany(inputs);
    } catch (err) {
      this.o.log.warn({ err: toOutpostError(err).message }, 'alarm datapoints not registered together: registered one by one');
    }
  }

  /** Turns a rule's subjects into its alarm: raised when the first is active, cleared when none is. */
  private settle(rc: RuleConditions, now: number): void {
    const a = this.alarms.get(rc.rule.id);
    if (!a) return;
    const active = rc.activeKeys();
    const subjects = active.slice(0, MAX_SUBJECTS);
    if (active.length > 0 && !a.active) {
      const value = rc.conditions.get(active[0]!)?.value;
      const message = rc.rule.message ?? defaultMessage(rc.rule, active, value);
      Object.assign(a, { active: true, since: now, raisedAt: now, acknowledged: false, message, subjects });
      if (value !== undefined) a.value = value;
      else delete a.value;
      delete a.clearedAt;
      delete a.ackedBy;
      delete a.ackedAt;
      this.record(a, 'alarm.raised', a.severity, message, { subjects, ...(value !== undefined ? { value } : {}) });
      this.changed(a);
    } else if (active.length === 0 && a.active) {
      this.clearAlarm(a, now);
    } else if (active.length > 0 && subjects.join('\n') !== (a.subjects ?? []).join('\n')) {
      a.subjects = subjects;
      this.changed(a);
    }
  }

  private clearAlarm(a: AlarmState, now: number, why?: string): void {
    Object.assign(a, { active: false, since: now, clearedAt: now });
    delete a.subjects;
    this.record(a, 'alarm.cleared', 'info', `${a.message}: cleared${why ? ` (${why})` : ''}`, {});
    this.changed(a);
  }

  private record(a: AlarmState, kind: string, severity: 'info' | AlarmSeverity, message: string, data: Record<string, unknown>): void {
    const source = a.source === 'flows' ? 'flows' : 'alarms';
    this.o.events.add({ source, kind, severity, message, data: { alarm: a.id, ...data } }, `${source}|${kind}|${a.id}`);
  }

  private changed(a: AlarmState): void {
    this.writer.changed(a.id);
  }
}

type Reading = Record<string, unknown> & { v: unknown; t: number; q?: string };

function parseReading(payload: Buffer): Reading | undefined {
  try {
    const msg = JSON.parse(payload.toString('utf8')) as unknown;
    return msg !== null && typeof msg === 'object' ? (msg as Reading) : undefined;
  } catch {
    // Only the gateway publishes on these topics, as JSON: anything else is no reading to judge.
    return undefined;
  }
}
