import type { RPCClient } from 'ocpp-rpc';
import type { AdapterContext } from '../../runtime/adapter.js';
import type { DatapointInput, Value } from '../../core/datapoint.js';
import { MAX_FUTURE_MS } from '../../core/datapoint.js';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import type { ChargerConfig, OcppOptions } from './config.js';
import { matchChargerProfile, type ChargerProfile } from './chargers.js';
import { createOcpp16Validator } from './codec.js';
import { chargerIds, chargerKey, connectorIds, connectorPrefix, connectorSensorDefs } from './mapping.js';
import { LoadManager, type LoadSessionInput, type PhaseIndex, type PhaseTriple, type Plan } from './load-manager.js';
import type { ChargingSession, SessionStore } from './sessions.js';
import { chargePointMaxProfile, limitInUnit, txDefaultProfile, txProfile } from './profiles.js';

/** The websocket connection of one charge point (an ocpp-rpc server-side client). */
export type ChargerConnection = Pick<RPCClient, 'call' | 'handle' | 'close' | 'on' | 'once' | 'off' | 'identity'>;

export interface ConnectorState {
  id: number;
  status?: string;
  errorCode?: string;
  powerW?: number;
  /** Latest measured current per phase (A); undefined when never reported. */
  currentsA: [number | undefined, number | undefined, number | undefined];
  /** Arrival time of the MeterValues that last set currentsA (load management times its reports by it). */
  currentsAt?: number;
  energyWh?: number;
  /** Operator caps (actuators). */
  currentLimitA?: number;
  powerLimitW?: number;
  enabled: boolean;
}

export interface ChargerState {
  identity: string;
  config?: ChargerConfig;
  profile: ChargerProfile;
  connection?: ChargerConnection;
  online: boolean;
  connectedAt?: number;
  lastSeen?: number;
  boot?: { chargePointVendor?: string; chargePointModel?: string; firmwareVersion?: string; chargePointSerialNumber?: string; at: number };
  connectors: Map<number, ConnectorState>;
}

export interface Counters {
  connections: number;
  refused: Record<string, number>;
  /** Inbound payloads that failed the OCPP 1.6 JSON schema, by OCPP-J error code sent back. */
  schemaViolations: Record<string, number>;
  /** Frames that were not valid OCPP-J (broken JSON, wrong message type). */
  badFrames: number;
  notImplemented: number;
  /** Our own output failed the schema: a bug on our side, logged as error. */
  outputViolations: number;
  dataTransfers: number;
  samplesSkipped: number;
  clockSkewed: number;
  valuesRejected: number;
  unknownTransactions: number;
  callFailures: number;
  /** Messages naming a connector the charger does not have (answered PropertyConstraintViolation). */
  connectorIdsRefused: number;
}

const PHASE_INDEX: Record<string, PhaseIndex> = { L1: 0, L2: 1, L3: 2 };

/**
 * The OCPP central system state of one adapter instance: chargers, connectors, their
 * datapoints, outbound calls and load management. Transport lives in server.ts,
 * message handling in handlers/, storage in sessions.ts.
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
  private statusTimer: NodeJS.Timeout | undefined;
  private readonly warned = new Set<string>();
  readonly voltage: number;
  /** Total EV current per phase that is safe with no knowledge of the site (config fallbackA). */
  readonly fallbackA: number | undefined;
  /** ChargePointMaxProfile limit (A) each connected charger confirmed; cleared on reconnect. */
  private readonly appliedCaps = new Map<string, number>();
  /** Allocations of the last plan logged at info, to log only changes there. */
  private lastPlanSignature: string | undefined;
  readonly ids: { plan: string; allocated: string; completed: string };

  constructor(
    readonly ctx: AdapterContext,
    readonly options: OcppOptions,
    readonly profiles: ReadonlyMap<string, ChargerProfile>,
    readonly sessions: SessionStore,
  ) {
    this.voltage = options.loadManagement?.voltage ?? 230;
    this.ids = { plan: `${options.prefix}.site.charging_plan`, allocated: `${options.prefix}.site.allocated_current`, completed: `${options.prefix}.sessions.completed` };
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
        },
        {
          now: () => ctx.clock.now(),
          sessions: () => this.loadSessions(),
          apply: (key, limitA) => this.applySessionLimit(key, limitA),
          onPlan: (plan) => this.onPlan(plan),
          betweenLowerAndRaise: (plan) => this.applyChargerCaps(plan),
          onError: (key, err) => this.warnOnce(`apply:${key}:${toOutpostError(err).code}`, { session: key, code: toOutpostError(err).code, reason: (err as Error).message }, 'charging limit not applied; retried at the next plan'),
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

  /** NumberOfConnectors (OCPP 1.6 §9.1.21): the installation's override, else the profile's. */
  connectorCount(charger: ChargerState): number {
    return charger.config?.connectors ?? charger.profile.connectors;
  }

  connector(charger: ChargerState, connectorId: number): ConnectorState {
    let c = charger.connectors.get(connectorId);
    if (!c) {
      c = { id: connectorId, currentsA: [undefined, undefined, undefined], enabled: true };
      charger.connectors.set(connectorId, c);
      const ids = connectorIds(this.options.prefix, charger.identity, connectorId);
      // Operator caps survive restarts: they are the actuators' last stored values.
      const limit = this.ctx.store.latest(ids.currentLimit)?.v;
      if (typeof limit === 'number') c.currentLimitA = limit;
      const power = this.ctx.store.latest(ids.powerLimit)?.v;
      if (typeof power === 'number') c.powerLimitW = power;
      const enabled = this.ctx.store.latest(ids.enabled)?.v;
      if (typeof enabled === 'boolean') c.enabled = enabled;
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
      await this.ctx.datapoints.register({ id: chargerIds(prefix, charger.identity).online, type: 'boolean', description: `Charger ${charger.identity} connected`, meta: { charger: charger.identity } });
      return;
    }
    const connector = this.connector(charger, connectorId);
    await this.ctx.datapoints.register(connectorSensorDefs(prefix, charger.identity, connectorId));
    for (const suffix of ['power', 'current_l1', 'current_l2', 'current_l3', 'energy', 'status', 'error_code']) this.registered.add(`${connectorPrefix(prefix, charger.identity, connectorId)}.${suffix}`);
    if (connectorId === 0) return;
    const ids = connectorIds(prefix, charger.identity, connectorId);
    const maxA = this.maxCurrentOf(charger);
    const phases = this.phasesOf(charger).length;
    const meta = { charger: charger.identity, connector: connectorId };
    await this.ctx.datapoints.register(
      { id: ids.currentLimit, kind: 'actuator', type: 'number', unit: 'A', min: 0, max: maxA, description: `Current limit per phase for ${charger.identity}/${connectorId} (0 pauses)`, meta },
      { onSet: async ({ v }) => this.setCap(charger, connector, { currentLimitA: v as number }) },
    );
    await this.ctx.datapoints.register(
      { id: ids.powerLimit, kind: 'actuator', type: 'number', unit: 'W', min: 0, max: Math.round(maxA * this.voltage * phases), description: `Power limit for ${charger.identity}/${connectorId} (0 pauses)`, meta },
      { onSet: async ({ v }) => this.setCap(charger, connector, { powerLimitW: v as number }) },
    );
    await this.ctx.datapoints.register(
      { id: ids.enabled, kind: 'actuator', type: 'boolean', description: `Connector ${charger.identity}/${connectorId} available for charging`, meta },
      { onSet: async ({ v }) => this.setEnabled(charger, connector, v as boolean) },
    );
  }

  /** Registers a datapoint for a measurand seen for the first time. */
  async ensureMeasurand(id: string, unit: string, charger: ChargerState, connectorId: number, measurand: string): Promise<void> {
    if (this.registered.has(id)) return;
    await this.ctx.datapoints.register({ id, type: 'number', unit: unit || undefined, description: `${measurand} of ${charger.identity}/${connectorId}`, meta: { charger: charger.identity, connector: connectorId, measurand } });
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
    if (this.warned.has(key)) return;
    if (this.warned.size > 1000) this.warned.clear();
    this.warned.add(key);
    this.ctx.log.warn(fields, `${message} (further ones like it are not logged)`);
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
    this.appliedCaps.delete(identity);
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
      throw new OutpostError('BAD_REQUEST', `${action} request does not match the OCPP 1.6 schema: ${(err as Error).message}`, { details: { ocppError: (err as { rpcErrorCode?: string }).rpcErrorCode } });
    }
    try {
      return (await charger.connection.call(action, params, { callTimeoutMs: this.options.callTimeoutMs })) as T;
    } catch (err) {
      this.counters.callFailures++;
      const code = (err as { rpcErrorCode?: string }).rpcErrorCode;
      if (code) throw new OutpostError('CHARGER_REJECTED', `${identity} answered ${action} with ${code}: ${(err as Error).message}`, { details: { ocppError: code }, cause: err });
      throw new OutpostError('CHARGER_CALL_FAILED', `${identity} did not answer ${action}: ${(err as Error).message}`, { cause: err });
    }
  }

  // ------------------------------------------------------------------ actuators

  private async setCap(charger: ChargerState, connector: ConnectorState, cap: { currentLimitA?: number; powerLimitW?: number }): Promise<Value> {
    const ids = connectorIds(this.options.prefix, charger.identity, connector.id);
    if (!this.loadManager) {
      // Without load management a cap is sent straight to the charger, so it must be connected.
      const limitA = Math.min(cap.currentLimitA ?? connector.currentLimitA ?? Infinity, (cap.powerLimitW ?? connector.powerLimitW ?? Infinity) / (this.voltage * this.phasesOf(charger).length), this.maxCurrentOf(charger));
      try {
        await this.sendConnectorLimit(charger, connector.id, limitA);
      } catch (err) {
        const e = toOutpostError(err);
        if (e.code === 'CHARGER_REJECTED') throw new OutpostError('SETPOINT_FAILED', e.message, { details: e.details, cause: e });
        throw e;
      }
    }
    if (cap.currentLimitA !== undefined) connector.currentLimitA = cap.currentLimitA;
    if (cap.powerLimitW !== undefined) connector.powerLimitW = cap.powerLimitW;
    const v = cap.currentLimitA ?? cap.powerLimitW!;
    await this.ctx.bus.publishValue(cap.currentLimitA !== undefined ? ids.currentLimit : ids.powerLimit, v);
    this.loadManager?.replan('operator limit changed');
    return v;
  }

  /** TxDefaultProfile for future sessions, plus a TxProfile for the running one (OCPP 1.6 §3.13.2). */
  private async sendConnectorLimit(charger: ChargerState, connectorId: number, limitA: number): Promise<void> {
    const { profile } = charger;
    const phases = this.phasesOf(charger).length;
    const limit = limitInUnit(limitA, profile.chargingRateUnit, phases, this.voltage);
    const def = txDefaultProfile({ connectorId, limit, unit: profile.chargingRateUnit, phases, stackLevel: Math.max(0, profile.stackLevel - 1) });
    await this.expectAccepted(charger.identity, 'SetChargingProfile', { connectorId, csChargingProfiles: def });
    const session = this.sessions.activeOn(charger.identity, connectorId);
    if (session) await this.sendTxLimit(charger, session, limitA);
  }

  private async sendTxLimit(charger: ChargerState, session: ChargingSession, limitA: number): Promise<void> {
    const phases = this.phasesOf(charger).length;
    const unit = charger.profile.chargingRateUnit;
    const profile = txProfile({
      connectorId: session.connectorId,
      transactionId: session.id,
      limit: limitInUnit(limitA, unit, phases, this.voltage),
      unit,
      phases,
      stackLevel: charger.profile.stackLevel,
      now: this.ctx.clock.now(),
    });
    await this.expectAccepted(charger.identity, 'SetChargingProfile', { connectorId: session.connectorId, csChargingProfiles: profile });
  }

  async expectAccepted(identity: string, action: string, params: Record<string, unknown>): Promise<Record<string, unknown>> {
    const result = await this.call(identity, action, params);
    const status = result.status;
    if (status !== 'Accepted' && status !== 'Scheduled') {
      throw new OutpostError('CHARGER_REJECTED', `${identity} answered ${action} with status ${String(status)}`, { details: result });
    }
    return result;
  }

  private async setEnabled(charger: ChargerState, connector: ConnectorState, enabled: boolean): Promise<Value> {
    // ChangeAvailability (OCPP 1.6 §5.7): "Scheduled" means after the running transaction.
    try {
      await this.expectAccepted(charger.identity, 'ChangeAvailability', { connectorId: connector.id, type: enabled ? 'Operative' : 'Inoperative' });
    } catch (err) {
      const e = toOutpostError(err);
      if (e.code === 'CHARGER_REJECTED') throw new OutpostError('SETPOINT_FAILED', e.message, { details: e.details, cause: e });
      throw e;
    }
    connector.enabled = enabled;
    if (!this.loadManager) {
      // Inoperative is only "Scheduled" while a transaction runs: the car would keep charging
      // until unplugged. A 0 A TxProfile stops the current now (load management does the
      // same through its plan); enabling again restores the operator limit or the maximum.
      const session = this.sessions.activeOn(charger.identity, connector.id);
      if (session) {
        const cap = Math.min(connector.currentLimitA ?? Infinity, (connector.powerLimitW ?? Infinity) / (this.voltage * this.phasesOf(charger).length), this.maxCurrentOf(charger));
        await this.sendTxLimit(charger, session, enabled ? cap : 0);
      }
    }
    await this.ctx.bus.publishValue(connectorIds(this.options.prefix, charger.identity, connector.id).enabled, enabled);
    this.loadManager?.replan('connector availability changed');
    return enabled;
  }

  // ------------------------------------------------------------------ load management

  private loadSessions(): LoadSessionInput[] {
    const out: LoadSessionInput[] = [];
    for (const session of this.sessions.openSessions()) {
      const charger = this.chargers.get(session.charger);
      if (!charger) continue;
      const connector = this.connector(charger, session.connectorId);
      const phases = this.phasesOf(charger);
      const key = `${charger.identity}/${session.connectorId}`;
      const drawA: PhaseTriple = [0, 0, 0];
      for (const p of phases) drawA[p] = connector.currentsA[p] ?? 0;
      let maxA = this.maxCurrentOf(charger);
      let capReason: string | undefined = `charger max ${maxA} A`;
      if (connector.currentLimitA !== undefined && connector.currentLimitA < maxA) {
        maxA = connector.currentLimitA;
        capReason = `operator current_limit ${maxA} A`;
      }
      if (connector.powerLimitW !== undefined) {
        const fromPower = Math.floor((connector.powerLimitW / (this.voltage * phases.length)) * 10) / 10;
        if (fromPower < maxA) {
          maxA = fromPower;
          capReason = `operator power_limit ${connector.powerLimitW} W`;
        }
      }
      if (!connector.enabled) {
        maxA = 0;
        capReason = 'disabled by operator';
      }
      if (session.authorization !== 'Accepted') {
        // OCPP 1.6 §5.16: a transaction whose idTag was not accepted is not to deliver energy
        // (the charger stops it, or suspends it with StopTransactionOnInvalidId false).
        maxA = 0;
        capReason = `idTag ${session.authorization}`;
      }
      let minA = charger.profile.minCurrentA;
      let priority = charger.config?.priority ?? 0;
      if (!charger.online) {
        // An offline charger keeps charging at its last limit: reserve exactly that, first.
        const held = this.loadManager?.appliedLimit(key) ?? maxA;
        minA = held;
        maxA = held;
        priority = Number.MAX_SAFE_INTEGER;
        capReason = `charger offline, holding its last limit ${held} A`;
      }
      out.push({ key, phases, minA, maxA, priority, order: session.start, capReason, drawA, reportedAt: connector.currentsAt, startedAt: session.start });
    }
    return out;
  }

  private async applySessionLimit(key: string, limitA: number): Promise<void> {
    const slash = key.lastIndexOf('/');
    const identity = key.slice(0, slash);
    const connectorId = Number(key.slice(slash + 1));
    const charger = this.chargers.get(identity);
    const session = this.sessions.activeOn(identity, connectorId);
    if (!charger || !session) return;
    if (!charger.online) throw new OutpostError('CHARGER_OFFLINE', `charger "${identity}" is not connected`);
    await this.sendTxLimit(charger, session, limitA);
    await this.publish([{ id: connectorIds(this.options.prefix, identity, connectorId).allocated, v: limitA, t: this.ctx.clock.now() }]);
  }

  private planDatapointsRegistered = false;

  private onPlan(plan: Plan & { t: number; trigger: string }): void {
    // Info only when what the sessions get changes; every other round (each meter reading) is debug.
    const signature = plan.allocations.map((a) => `${a.key}=${a.limitA}`).join(',');
    const changed = signature !== this.lastPlanSignature;
    this.lastPlanSignature = signature;
    this.ctx.log[changed ? 'info' : 'debug'](
      { trigger: plan.trigger, reason: plan.reason, meterState: plan.meterState, availableA: plan.availableA, allocatedA: plan.allocatedA, allocations: plan.allocations.map((a) => ({ session: a.key, limitA: a.limitA, reason: a.reason })) },
      changed ? 'charging plan changed' : 'charging plan unchanged',
    );
    const publish = async (): Promise<void> => {
      if (!this.planDatapointsRegistered) {
        await this.ctx.datapoints.register([
          { id: this.ids.plan, type: 'json', description: 'Latest load management plan with reasons' },
          { id: this.ids.allocated, type: 'number', unit: 'A', description: 'Current granted to EV charging on the most loaded phase' },
        ]);
        this.planDatapointsRegistered = true;
      }
      await this.publish([
        { id: this.ids.plan, v: plan as unknown as Value, t: plan.t },
        { id: this.ids.allocated, v: Math.max(...plan.allocatedA), t: plan.t },
      ]);
    };
    publish().catch((err) => this.warnOnce('plan-publish', { reason: (err as Error).message }, 'charging plan not published'));
    this.scheduleStatus();
  }

  // ------------------------------------------------------------------ safety profiles

  /**
   * Sent once per connection when load management is on: a TxDefaultProfile at the minimum
   * current (IEC 61851-1: 6 A) on connector 0, so every new session starts low until the plan
   * raises it with a TxProfile (OCPP 1.6 §3.13.2: TxProfile wins over TxDefaultProfile). The
   * ChargePointMaxProfile follows with the first plan (applyChargerCaps).
   */
  async sendSafetyProfiles(identity: string): Promise<void> {
    const charger = this.chargers.get(identity);
    if (!this.loadManager || !charger?.online) return;
    const phases = this.phasesOf(charger).length;
    const unit = charger.profile.chargingRateUnit;
    const minA = charger.profile.minCurrentA;
    const def = txDefaultProfile({ connectorId: 0, limit: limitInUnit(minA, unit, phases, this.voltage), unit, phases, stackLevel: Math.max(0, charger.profile.stackLevel - 1) });
    try {
      await this.expectAccepted(identity, 'SetChargingProfile', { connectorId: 0, csChargingProfiles: def });
      this.ctx.log.info({ charger: identity, limitA: minA }, 'TxDefaultProfile set: new sessions start at the minimum current');
    } catch (err) {
      const e = toOutpostError(err);
      this.ctx.log.warn({ charger: identity, code: e.code, reason: e.message }, 'charger refused the TxDefaultProfile: new sessions start at its own default until the plan limits them');
    }
  }

  /**
   * ChargePointMaxProfile targets (A per phase, whole charger): what the plan gives the charger's
   * sessions, plus a share of what is left of the fallback limit. A charger cut off from the
   * gateway keeps its cap, so the sum over all chargers never exceeds max(fallbackA, the
   * current plan's total) even if every one of them starts sessions on its own. The rest of the
   * fallback is shared equally, but a share below the 6 A minimum cannot charge anything:
   * then 6 A go to as many chargers as fit (in config order) and 0 A to the others.
   */
  chargerCaps(plan: Plan): Map<string, number> {
    const deci = (a: number): number => Math.floor(a * 10 + 1e-9);
    const planned = new Map<string, number>();
    for (const charger of this.chargers.values()) {
      // An offline charger holds whatever cap it confirmed last: reserve that.
      planned.set(charger.identity, charger.online ? 0 : deci(this.appliedCaps.get(charger.identity) ?? 0));
    }
    for (const a of plan.allocations) {
      const identity = a.key.slice(0, a.key.lastIndexOf('/'));
      if (this.chargers.get(identity)?.online) planned.set(identity, (planned.get(identity) ?? 0) + deci(a.limitA));
    }
    let remaining = Math.max(0, deci(this.fallbackA ?? 0) - [...planned.values()].reduce((x, y) => x + y, 0));
    const count = Math.max(1, planned.size);
    const share = Math.floor(remaining / count);
    const caps = new Map<string, number>();
    for (const charger of this.chargers.values()) {
      const base = planned.get(charger.identity)!;
      const minA = deci(charger.profile.minCurrentA);
      let extra = share;
      if (share < minA) {
        extra = remaining >= minA ? minA : 0;
        remaining -= extra;
      }
      const max = deci(this.maxCurrentOf(charger));
      caps.set(charger.identity, Math.max(base, Math.min(max, base + extra)) / 10);
    }
    return caps;
  }

  /** Lowers then raises ChargePointMaxProfiles; refusals are logged and retried next round. */
  private async applyChargerCaps(plan: Plan): Promise<void> {
    const targets = [...this.chargerCaps(plan)].filter(([identity, capA]) => this.chargers.get(identity)?.online && this.appliedCaps.get(identity) !== capA);
    const lower = targets.filter(([identity, capA]) => capA < (this.appliedCaps.get(identity) ?? Infinity));
    const higher = targets.filter((t) => !lower.includes(t));
    for (const group of [lower, higher]) {
      await Promise.all(
        group.map(async ([identity, capA]) => {
          const charger = this.chargers.get(identity)!;
          const phases = this.phasesOf(charger).length;
          const unit = charger.profile.chargingRateUnit;
          try {
            await this.expectAccepted(identity, 'SetChargingProfile', { connectorId: 0, csChargingProfiles: chargePointMaxProfile({ limit: limitInUnit(capA, unit, phases, this.voltage), unit, phases }) });
            this.appliedCaps.set(identity, capA);
            this.ctx.log.debug({ charger: identity, limitA: capA }, 'ChargePointMaxProfile set');
          } catch (err) {
            const e = toOutpostError(err);
            this.warnOnce(`cpmax:${identity}:${e.code}`, { charger: identity, limitA: capA, code: e.code, reason: e.message }, 'charger refused the ChargePointMaxProfile; retried at the next plan');
          }
        }),
      );
    }
  }

  /** Last ChargePointMaxProfile limit a charger confirmed (A), for status and tests. */
  appliedCap(identity: string): number | undefined {
    return this.appliedCaps.get(identity);
  }

  /**
   * A charging profile was set or cleared from outside load management (REST): what the load
   * manager thinks is in force on that charger is no longer true, so it forgets it and re-plans,
   * which sends its own profiles again. Connector 0 or none means the whole charger.
   */
  profilesChangedExternally(identity: string, connectorId: number | undefined, clearedAll: boolean): void {
    if (!this.loadManager) return;
    const charger = this.chargers.get(identity);
    if (!charger) return;
    for (const c of charger.connectors.keys()) if (connectorId === undefined || connectorId === 0 || connectorId === c) this.loadManager.forget(`${identity}/${c}`);
    if (connectorId === undefined || connectorId === 0) this.appliedCaps.delete(identity);
    if (clearedAll) void this.sendSafetyProfiles(identity);
    this.loadManager.replan(`charging profile changed on ${identity} outside load management`);
  }

  statusChanged(trigger: string): void {
    this.loadManager?.replan(trigger);
    this.scheduleStatus();
  }

  // ------------------------------------------------------------------ status

  /** Adapter status at most every 500 ms: counters, chargers, plan. */
  scheduleStatus(): void {
    if (this.statusTimer) return;
    this.statusTimer = setTimeout(() => {
      this.statusTimer = undefined;
      this.reportStatus();
    }, 500);
    this.statusTimer.unref();
  }

  reportStatus(): void {
    const chargers = [...this.chargers.values()].map((c) => ({
      id: c.identity,
      online: c.online,
      profile: c.profile.name,
      connectors: Object.fromEntries([...c.connectors.values()].map((k) => [k.id, k.status ?? 'unknown'])),
    }));
    const offline = chargers.filter((c) => !c.online && this.configFor(c.id));
    const plan = this.loadManager?.lastPlan;
    this.ctx.setStatus({
      degraded: offline.length > 0 || plan?.meterState === 'stale',
      message: [
        `${chargers.filter((c) => c.online).length}/${chargers.length} chargers online, ${this.sessions.openSessions().length} sessions`,
        plan ? `plan: ${plan.reason}` : undefined,
      ]
        .filter(Boolean)
        .join('; '),
      info: {
        counters: this.counters,
        chargers,
        ...(plan ? { plan: { t: plan.t, trigger: plan.trigger, reason: plan.reason, meterState: plan.meterState, availableA: plan.availableA, allocatedA: plan.allocatedA, allocations: plan.allocations } } : {}),
      },
    });
  }

  stop(): void {
    if (this.statusTimer) clearTimeout(this.statusTimer);
    this.statusTimer = undefined;
  }
}
