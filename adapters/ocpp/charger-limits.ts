/**
 * How limits reach the chargers: the operator's current/power caps and availability (the
 * connector actuators), and the TxProfile / TxDefaultProfile that carry a limit (OCPP 1.6
 * §3.13). Split from central.ts, which keeps the charger state; both the actuators and load
 * management (applySessionLimit) send their limits through here.
 */
import type { Value } from '../../core/datapoint.js';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import type { CentralSystem } from './central.js';
import type { ChargerState, ConnectorState } from './charger-state.js';
import { connectorIds } from './mapping.js';
import type { ChargingSession } from './sessions.js';
import { limitInUnit, txDefaultProfile, txProfile } from './profiles.js';
import { unmanagedModeCapA, type ChargeMode } from './charge-modes.js';

/**
 * Without load management, what a connector may draw (A per phase): the operator caps, the
 * charger maximum and the charge mode's fixed limit (no surplus is measured: minpv the
 * minimum, pv 0 A).
 */
function unmanagedLimitA(cs: CentralSystem, charger: ChargerState, connector: ConnectorState, change: Partial<ConnectorState> = {}): number {
  const c = { ...connector, ...change };
  return Math.min(
    c.currentLimitA ?? Infinity,
    (c.powerLimitW ?? Infinity) / (cs.voltage * cs.phasesOf(charger).length),
    cs.maxCurrentOf(charger),
    unmanagedModeCapA(c.mode, charger.profile.minCurrentA),
  );
}

/** A refusal by the charger is a failed setpoint (the operator sees the charger's answer). */
async function asSetpoint(send: () => Promise<void>): Promise<void> {
  try {
    await send();
  } catch (err) {
    const e = toOutpostError(err);
    if (e.code === 'CHARGER_REJECTED') throw new OutpostError('SETPOINT_FAILED', e.message, { details: e.details, cause: e });
    throw e;
  }
}

export async function setCap(
  cs: CentralSystem,
  charger: ChargerState,
  connector: ConnectorState,
  cap: { currentLimitA?: number; powerLimitW?: number },
): Promise<Value> {
  const ids = connectorIds(cs.options.prefix, charger.identity, connector.id);
  if (!cs.loadManager) {
    // Without load management a cap is sent straight to the charger, so it must be connected.
    const change: Partial<ConnectorState> = {};
    if (cap.currentLimitA !== undefined) change.currentLimitA = cap.currentLimitA;
    if (cap.powerLimitW !== undefined) change.powerLimitW = cap.powerLimitW;
    await asSetpoint(() => sendConnectorLimit(cs, charger, connector.id, unmanagedLimitA(cs, charger, connector, change)));
  }
  if (cap.currentLimitA !== undefined) connector.currentLimitA = cap.currentLimitA;
  if (cap.powerLimitW !== undefined) connector.powerLimitW = cap.powerLimitW;
  const v = cap.currentLimitA ?? cap.powerLimitW!;
  await cs.ctx.bus.publishValue(cap.currentLimitA !== undefined ? ids.currentLimit : ids.powerLimit, v);
  cs.loadManager?.replan('operator limit changed');
  return v;
}

/** TxDefaultProfile for future sessions, plus a TxProfile for the running one (OCPP 1.6 §3.13.2). */
async function sendConnectorLimit(cs: CentralSystem, charger: ChargerState, connectorId: number, limitA: number): Promise<void> {
  const { profile } = charger;
  const phases = cs.phasesOf(charger).length;
  const limit = limitInUnit(limitA, profile.chargingRateUnit, phases, cs.voltage);
  const def = txDefaultProfile({ connectorId, limit, unit: profile.chargingRateUnit, phases, stackLevel: Math.max(0, profile.stackLevel - 1) });
  await cs.expectAccepted(charger.identity, 'SetChargingProfile', { connectorId, csChargingProfiles: def });
  const session = cs.sessions.activeOn(charger.identity, connectorId);
  if (session) await sendTxLimit(cs, charger, session, limitA);
}

async function sendTxLimit(cs: CentralSystem, charger: ChargerState, session: ChargingSession, limitA: number): Promise<void> {
  const phases = cs.phasesOf(charger).length;
  const unit = charger.profile.chargingRateUnit;
  const profile = txProfile({
    connectorId: session.connectorId,
    transactionId: session.id,
    limit: limitInUnit(limitA, unit, phases, cs.voltage),
    unit,
    phases,
    stackLevel: charger.profile.stackLevel,
    now: cs.ctx.clock.now(),
  });
  await cs.expectAccepted(charger.identity, 'SetChargingProfile', { connectorId: session.connectorId, csChargingProfiles: profile });
}

export async function setEnabled(cs: CentralSystem, charger: ChargerState, connector: ConnectorState, enabled: boolean): Promise<Value> {
  // ChangeAvailability (OCPP 1.6 §5.7): "Scheduled" means after the running transaction.
  try {
    await cs.expectAccepted(charger.identity, 'ChangeAvailability', { connectorId: connector.id, type: enabled ? 'Operative' : 'Inoperative' });
  } catch (err) {
    const e = toOutpostError(err);
    if (e.code === 'CHARGER_REJECTED') throw new OutpostError('SETPOINT_FAILED', e.message, { details: e.details, cause: e });
    throw e;
  }
  connector.enabled = enabled;
  if (!cs.loadManager) {
    // Inoperative is only "Scheduled" while a transaction runs: the car would keep charging
    // until unplugged. A 0 A TxProfile stops the current now (load management does the
    // same through its plan); enabling again restores the operator limit or the maximum.
    const session = cs.sessions.activeOn(charger.identity, connector.id);
    if (session) await sendTxLimit(cs, charger, session, enabled ? unmanagedLimitA(cs, charger, connector) : 0);
  }
  await cs.ctx.bus.publishValue(connectorIds(cs.options.prefix, charger.identity, connector.id).enabled, enabled);
  cs.loadManager?.replan('connector availability changed');
  return enabled;
}

/**
 * The charge mode of a connector (the `mode` actuator). With load management the next plan
 * applies it (an operator's pick is no oscillation: the minimum pause is lifted); without, its
 * fixed limit goes to the charger as a cap (TxDefaultProfile + TxProfile).
 */
export async function setMode(cs: CentralSystem, charger: ChargerState, connector: ConnectorState, mode: ChargeMode): Promise<Value> {
  if (!cs.loadManager) await asSetpoint(() => sendConnectorLimit(cs, charger, connector.id, unmanagedLimitA(cs, charger, connector, { mode })));
  const before = connector.mode;
  connector.mode = mode;
  await cs.ctx.bus.publishValue(connectorIds(cs.options.prefix, charger.identity, connector.id).mode, mode);
  cs.ctx.log.info({ charger: charger.identity, connector: connector.id, mode, before }, 'charge mode changed');
  cs.loadManager?.modeChanged(`${charger.identity}/${connector.id}`, `charge mode ${before} → ${mode}`);
  return mode;
}

/** A limit the load manager planned for one session (`<charger>/<connector>`), as a TxProfile. */
export async function applySessionLimit(cs: CentralSystem, key: string, limitA: number): Promise<void> {
  const slash = key.lastIndexOf('/');
  const identity = key.slice(0, slash);
  const connectorId = Number(key.slice(slash + 1));
  const charger = cs.chargers.get(identity);
  const session = cs.sessions.activeOn(identity, connectorId);
  if (!charger || !session) return;
  if (!charger.online) throw new OutpostError('CHARGER_OFFLINE', `charger "${identity}" is not connected`);
  await sendTxLimit(cs, charger, session, limitA);
  await cs.publish([{ id: connectorIds(cs.options.prefix, identity, connectorId).allocated, v: limitA, t: cs.ctx.clock.now() }]);
}
