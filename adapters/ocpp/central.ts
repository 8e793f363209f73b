import type { AdapterContext } from '../../runtime/adapter.js';
import { warnOnce } from '../../runtime/log.js';
import type { Value } from '../../core/datapoint.js';
import { MAX_FUTURE_MS } from '../../core/datapoint.js';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import './errors.js';
import type { ChargerConfig, OcppOptions } from './config.js';
import { matchChargerProfile, type ChargerProfile } from './chargers.js';
import type { ChargerConnection, ChargerState, ConnectorState, Counters } from './charger-state.js';
import { applySessionLimit, setCap, setEnabled, setMode } from './charger-limits.js';
import { CHARGE_MODES, isChargeMode } from './charge-modes.js';
import { createOcpp16Validator } from './codec.js';
import { loadSessions } from './load-inputs.js';
import { connectorBound } from './connector-count.js';
import { chargerIds, chargerKey, connectorIds, connectorPrefix, connectorSensorDefs } from './mapping.js';
import { LoadManager, type PhaseIndex, type Plan } from './load-manager.js';
import { PlanStatusReporter } from './plan-status.js';
import { SafetyProfiles } from './safety-profiles.js';
import type { SessionStore } from './sessions.js';
import type { GatewayEventInput } from '../../core/events.js';
import type {} from '../../runtime/site/services.js'; // the 'events' and 'tariff' service kinds

const PHASE_INDEX: Record<string, PhaseIndex> = { L1: 0, L2: 1, L3: 2 };

/**
 * The OCPP central system state of one adapter instance: chargers, connectors, their
 * datapoints, outbound calls and the wiring of load management. Transport lives in server.ts,
 * message handling in handlers/, storage in sessions.ts; the charger limits in
 * charger-limits.ts, load management's inputs in load-inputs.ts, safety profiles in
 * safety-profiles.ts, plan and status reports in plan-status.ts.
 */
export class CentralSystem {
  readonly chargers = new Map<string, ChargerState>();
  readonly counters: Counters = {
    connections: 0,
    refused: {},
    schemaViolations: {},
    badFrames: 0,
    notImplemented: 0,
    outputViolations: 0,
    dataTransfers: 0,
    samplesSkipped: 0,
    clockSkewed: 0,
    valuesRejected: 0,
    unknownTransactions: 0,
    callFailures: 0,
    connectorIdsRefused: 0,
  };
  readonly validator = createOcpp16Validator();
  readonly loadManager: LoadManager | undefined;
  private readonly registered = new Set<string>();
  private readonly registering = new Map<string, Promise<void>>();
  private readonly warnedOnce = warnOnce(() => this.ctx.log);
  readonly voltage: number;
  /** Total EV current per phase that is safe with no knowledge of the site (config fallbackA). */
  readonly fallbackA: number | undefined;
  /** TxDefaultProfile per connection and ChargePointMaxProfile caps, with what each charger confirmed. */
  private readonly safetyProfiles = new SafetyProfiles(this);
  /** Plan log and datapoints, adapter status. */
  private readonly reporter = new PlanStatusReporter(this);
  readonly ids: { plan: string; allocated: string; completed: string };

  constructor(
    readonly ctx: AdapterContext,
    readonly options: OcppOptions,
    readonly profiles: ReadonlyMap<string, ChargerProfile>,
    readonly sessions: SessionStore,
  ) {
    this.voltage = options.loadManagement?.voltage ?? 230;
    this.ids = {
      plan: `${options.prefix}.site.charging_plan`,
      allocated: `${options.prefix}.site.allocated_current`,
      completed: `${options.prefix}.sessions.completed`,
    };
    for (const config of options.chargers) this.chargerState(config.id);
    const lm = options.loadManagement;
    if (lm) {
      const limitA = lm.limitA ?? (lm.limitKw! * 1000) / (lm.voltage * lm.sitePhases);
      this.fallbackA = Math.min(Math.floor(limitA * 10) / 10, lm.fallbackA ?? Math.floor(limitA * 5) / 10);
      this.loadManager = new LoadManager(
        {
          limitA: Math.floor(limitA * 10) / 10,
          voltage: lm.voltage,
          sitePhases: lm.sitePhases,
          fallbackA: this.fallbackA,
          marginA: lm.marginA,
          meter: lm.meter,
          control: lm.control,
          pv: lm.pv,
        },
        {
          now: () => ctx.clock.now(),
          sessions: () => loadSessions(this),
          apply: (key, limitA) => applySessionLimit(this, key, limitA),
          onPlan: (plan) => this.reporter.onPlan(plan),
          onSwitch: (key, paused, reason) =>
            this.recordEvent({
              kind: paused ? 'load.paused' : 'load.resumed',
              severity: 'info',
              message: `${key} ${paused ? 'paused' : 'resumed'} by load management: ${reason.replace(/^paused: /, '')}`,
              data: { session: key, reason },
            }),
          betweenLowerAndRaise: (plan) => this.safetyProfiles.applyChargerCaps(plan),
          onError: (key, err) =>
            this.warnOnce(
              `apply:${key}:${toOutpostError(err).code}`,
              { session: key, code: toOutpostError(err).code, reason: (err as Error).message },
              'charging limit not applied; retried at the next plan',
            ),
        },
      );
    }
  }

  // ------------------------------------------------------------------ chargers and datapoints

  /** Another charger (configured or connected) whose identity maps to the same datapoint ids. */
  collidesWith(identity: string): string | undefined {
    const key = chargerKey(identity);
    for (const other of [...this.options.chargers.map((c) => c.id), ...this.chargers.keys()]) {
      if (other !== identity && chargerKey(other) === key) return other;
    }
    return undefined;
  }

  configFor(identity: string): ChargerConfig | undefined {
    return this.options.chargers.find((c) => c.id === identity);
  }

  chargerState(identity: string): ChargerState {
    let state = this.chargers.get(identity);
    if (!state) {
      const config = this.configFor(identity);
      const profile = (config?.profile && this.profiles.get(config.profile)) || matchChargerProfile(this.profiles, undefined);
      state = { identity, config, profile, online: false, connectors: new Map() };
      this.chargers.set(identity, state);
    }
    return state;
  }

  /** Profile chosen at boot unless the config names one. */
  setBoot(charger: ChargerState, boot: NonNullable<ChargerState['boot']>): void {
    charger.boot = boot;
    if (!charger.config?.profile) charger.profile = matchChargerProfile(this.profiles, boot);
  }

  phasesOf(charger: ChargerState): PhaseIndex[] {
    const phases = charger.config?.phases ?? charger.profile.phases;
    return phases === 1 ? [PHASE_INDEX[charger.config?.phase ?? 'L1']!] : [0, 1, 2];
  }

  maxCurrentOf(charger: ChargerState): number {
    return charger.config?.maxCurrentA ?? charger.profile.maxCurrentA;
  }

  /**
   * NumberOfConnectors (OCPP 1.6 §9.1.21): the installation's override, else the charger's own
   * answer to GetConfiguration, else the profile's (connector-count.ts).
   */
  connectorCount(charger: ChargerState): number {
    return connectorBound(charger).count;
  }

  connector(charger: ChargerState, connectorId: number): ConnectorState {
    let c = charger.connectors.get(connectorId);
    if (!c) {
      c = { id: connectorId, currentsA: [undefined, undefined, undefined], enabled: true, mode: charger.config?.mode ?? 'now' };
      charger.connectors.set(connectorId, c);
      const ids = connectorIds(this.options.prefix, charger.identity, connectorId);
      // Operator caps survive restarts: they are the actuators' last stored values.
      const limit = this.ctx.store.latest(ids.currentLimit)?.v;
      if (typeof limit === 'number') c.currentLimitA = limit;
      const power = this.ctx.store.latest(ids.powerLimit)?.v;
      if (typeof power === 'number') c.powerLimitW = power;
      const enabled = this.ctx.store.latest(ids.enabled)?.v;
      if (typeof enabled === 'boolean') c.enabled = enabled;
      // The mode picked last wins over the configured one (a restart keeps it).
      const mode = this.ctx.store.latest(ids.mode)?.v;
      if (isChargeMode(mode)) c.mode = mode;
    }
    return c;
  }

  /** Registers a charger's or connector's datapoints once (idempotent, concurrent-safe). */
  async ensureDatapoints(charger: ChargerState, connectorId?: number): Promise<void> {
    const key = `${charger.identity}/${connectorId ?? '-'}`;
    if (this.registered.has(key)) return;
    let pending = this.registering.get(key);
    if (!pending) {
      pending = this.registerDatapoints(charger, connectorId).then(() => {
        this.registered.add(key);
        this.registering.delete(key);
      });
      pending.catch(() => this.registering.delete(key));
      this.registering.set(key, pending);
    }
    await pending;
  }

  private async registerDatapoints(charger: ChargerState, connectorId?: number): Promise<void> {
    const { prefix } = this.options;
    if (connectorId === undefined) {
      await this.ctx.datapoints.register({
        id: chargerIds(prefix, charger.identity).online,
        type: 'boolean',
        description: `Charger ${charger.identity} connected`,
        meta: { charger: charger.identity },
      });
      return;
    }
    const connector = this.connector(charger, connectorId);
    await this.ctx.datapoints.register(connectorSensorDefs(prefix, charger.identity, connectorId));
    for (const suffix of ['power', 'current_l1', 'current_l2', 'current_l3', 'energy', 'status', 'error_code'])
      this.registered.add(`${connectorPrefix(prefix, charger.identity, connectorId)}.${suffix}`);
    if (connectorId === 0) return;
    const ids = connectorIds(prefix, charger.identity, connectorId);
    const maxA = this.maxCurrentOf(charger);
    const phases = this.phasesOf(charger).length;
    const meta = { charger: charger.identity, connector: connectorId };
    await this.ctx.datapoints.register(
      {
        id: ids.currentLimit,
        kind: 'actuator',
        type: 'number',
        unit: 'A',
        min: 0,
        max: maxA,
        description: `Current limit per phase for ${charger.identity}/${connectorId} (0 pauses)`,
        meta,
      },
      { onSet: async ({ v }) => setCap(this, charger, connector, { currentLimitA: v as number }) },
    );
    await this.ctx.datapoints.register(
      {
        id: ids.powerLimit,
        kind: 'actuator',
        type: 'number',
        unit: 'W',
        min: 0,
        max: Math.round(maxA * this.voltage * phases),
        description: `Power limit for ${charger.identity}/${connectorId} (0 pauses)`,
        meta,
      },
      { onSet: async ({ v }) => setCap(this, charger, connector, { powerLimitW: v as number }) },
    );
    await this.ctx.datapoints.register(
      { id: ids.enabled, kind: 'actuator', type: 'boolean', description: `Connector ${charger.identity}/${connectorId} available for charging`, meta },
      { onSet: async ({ v }) => setEnabled(this, charger, connector, v as boolean) },
    );
    await this.ctx.datapoints.register(
      {
        id: ids.mode,
        kind: 'actuator',
        type: 'string',
        allowed: [...CHARGE_MODES],
        description: `Charge mode of ${charger.identity}/${connectorId}: off, now, minpv (minimum + PV surplus), pv (PV surplus only)`,
        meta,
      },
      { onSet: async ({ v }) => setMode(this, charger, connector, v as (typeof CHARGE_MODES)[number]) },
    );
  }

  /** An entry in the gateway's event log, when it has one (core/events.ts; absent: nothing). */
  recordEvent(event: Omit<GatewayEventInput, 'source'>): void {
    const sink = this.ctx.services.get('events', 'gateway');
    if (!sink) return;
    try {
      sink.record({ source: this.ctx.id, ...event });
    } catch (err) {
      this.warnOnce('event-record', { kind: event.kind, reason: (err as Error).message }, 'event not recorded');
    }
  }

  /** Registers a datapoint for a measurand seen for the first time. */
  async ensureMeasurand(id: string, unit: string, charger: ChargerState, connectorId: number, measurand: string): Promise<void> {
    if (this.registered.has(id)) return;
    await this.ctx.datapoints.register({
      id,
      type: 'number',
      unit: unit || undefined,
      description: `${measurand} of ${charger.identity}/${connectorId}`,
      meta: { charger: charger.identity, connector: connectorId, measurand },
    });
    this.registered.add(id);
  }

  /** Publishes values; a bad value is counted and logged once per kind, never fatal. */
  async publish(points: Array<{ id: string; v: Value; t: number; q?: 'stale' | 'bad' }>): Promise<void> {
    if (points.length === 0) return;
    try {
      await this.ctx.bus.publishValues(points);
    } catch (err) {
      this.counters.valuesRejected += points.length;
      const e = toOutpostError(err);
      this.warnOnce(`publish:${e.code}`, { code: e.code, reason: e.message }, 'charger values not stored');
    }
  }

  /** Charger clocks are often wrong after a power cut: out-of-range times become arrival time. */
  sampleTime(t: number | undefined): number {
    const now = this.ctx.clock.now();
    if (t === undefined || t < Date.UTC(2000, 0, 1) || t > now + MAX_FUTURE_MS) {
      this.counters.clockSkewed++;
      return now;
    }
    return t;
  }

  warnOnce(key: string, fields: Record<string, unknown>, message: string): void {
    this.warnedOnce(key, fields, `${message} (further ones like it are not logged)`);
  }

  // ------------------------------------------------------------------ connections

  attach(identity: string, connection: ChargerConnection): ChargerState {
    const charger = this.chargerState(identity);
    const previous = charger.connection;
    charger.connection = connection;
    charger.online = true;
    charger.connectedAt = this.ctx.clock.now();
    charger.lastSeen = charger.connectedAt;
    this.counters.connections++;
    if (previous && previous !== connection) {
      // A charger that reconnects before its old TCP connection timed out: the new one wins.
      void previous.close({ code: 1000, reason: 'replaced by a newer connection', force: true }).catch(() => undefined);
    }
    // A (re)connected charger may have lost or kept its profiles: everything is sent again.
    for (const c of charger.connectors.keys()) this.loadManager?.forget(`${identity}/${c}`);
    this.safetyProfiles.appliedCaps.delete(identity);
    void this.ensureDatapoints(charger)
      .then(() => this.publish([{ id: chargerIds(this.options.prefix, identity).online, v: true, t: this.ctx.clock.now() }]))
      .catch((err) => this.warnOnce(`register:${identity}`, { charger: identity, reason: (err as Error).message }, 'charger datapoints not registered'));
    this.statusChanged('charger connected');
    return charger;
  }

  detach(identity: string, connection: ChargerConnection): void {
    const charger = this.chargers.get(identity);
    if (!charger || charger.connection !== connection) return;
    charger.connection = undefined;
    charger.online = false;
    if (this.registered.has(`${identity}/-`)) void this.publish([{ id: chargerIds(this.options.prefix, identity).online, v: false, t: this.ctx.clock.now() }]);
    this.statusChanged('charger disconnected');
  }

  /** An OCPP call to a charger, with errors mapped to coded OutpostErrors. */
  async call<T = Record<string, unknown>>(identity: string, action: string, params: Record<string, unknown>): Promise<T> {
    const charger = this.chargers.get(identity);
    if (!charger) throw new OutpostError('NOT_FOUND', `unknown charger "${identity}"`);
    if (!charger.connection) throw new OutpostError('CHARGER_OFFLINE', `charger "${identity}" is not connected`);
    try {
      // Strict on output: our own request must pass the OCPP 1.6 schema before it is sent.
      this.validator.validate(`urn:${action}.req`, params);
    } catch (err) {
      throw new OutpostError('BAD_REQUEST', `${action} request does not match the OCPP 1.6 schema: ${(err as Error).message}`, {
        details: { ocppError: (err as { rpcErrorCode?: string }).rpcErrorCode },
      });
    }
    try {
      return (await charger.connection.call(action, params, { callTimeoutMs: this.options.callTimeoutMs })) as T;
    } catch (err) {
      this.counters.callFailures++;
      const code = (err as { rpcErrorCode?: string }).rpcErrorCode;
      if (code)
        throw new OutpostError('CHARGER_REJECTED', `${identity} answered ${action} with ${code}: ${(err as Error).message}`, {
          details: { ocppError: code },
          cause: err,
        });
      throw new OutpostError('CHARGER_CALL_FAILED', `${identity} did not answer ${action}: ${(err as Error).message}`, { cause: err });
    }
  }

  async expectAccepted(identity: string, action: string, params: Record<string, unknown>): Promise<Record<string, unknown>> {
    const result = await this.call(identity, action, params);
    const status = result.status;
    if (status !== 'Accepted' && status !== 'Scheduled') {
      throw new OutpostError('CHARGER_REJECTED', `${identity} answered ${action} with status ${String(status)}`, { details: result });
    }
    return result;
  }

  statusChanged(trigger: string): void {
    this.loadManager?.replan(trigger);
    this.scheduleStatus();
  }

  // ------------------------------------------------------------------ safety profiles (safety-profiles.ts)

  /** TxDefaultProfile at the minimum current on connector 0, once per connection (load management on). */
  sendSafetyProfiles(identity: string): Promise<void> {
    return this.safetyProfiles.sendSafetyProfiles(identity);
  }

  /** ChargePointMaxProfile target per charger (A per phase) for a plan. */
  chargerCaps(plan: Plan): Map<string, number> {
    return this.safetyProfiles.chargerCaps(plan);
  }

  /** Last ChargePointMaxProfile limit a charger confirmed (A), for status and tests. */
  appliedCap(identity: string): number | undefined {
    return this.safetyProfiles.appliedCap(identity);
  }

  /** A charging profile was set or cleared through REST: load management forgets and re-plans. */
  profilesChangedExternally(identity: string, connectorId: number | undefined, clearedAll: boolean): void {
    this.safetyProfiles.profilesChangedExternally(identity, connectorId, clearedAll);
  }

  // ------------------------------------------------------------------ status (plan-status.ts)

  /** Adapter status at most every 500 ms: counters, chargers, plan. */
  scheduleStatus(): void {
    this.reporter.scheduleStatus();
  }

  reportStatus(): void {
    this.reporter.reportStatus();
  }

  stop(): void {
    this.reporter.stop();
  }
}
