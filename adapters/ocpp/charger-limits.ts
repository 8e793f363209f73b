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

export async function setCap(
  cs: CentralSystem,
  charger: ChargerState,
  connector: ConnectorState,
  cap: { currentLimitA?: number; powerLimitW?: number },
): Promise<Value> {
  const ids = connectorIds(cs.options.prefix, charger.identity, connector.id);
  if (!cs.loadManager) {
    // Without load management a cap is sent straight to the charger, so it must be connected.
    const limitA = Math.min(
      cap.currentLimitA ?? connector.currentLimitA ?? Infinity,
      (cap.powerLimitW ?? connector.powerLimitW ?? Infinity) / (cs.voltage * cs.phasesOf(charger).length),
      cs.maxCurrentOf(charger),
    );
    try {
      await sendConnectorLimit(cs, charger, connector.id, limitA);
    } catch (err) {
      const e = toOutpostError(err);
      if (e.code === 'CHARGER_REJECTED') throw new OutpostError('SETPOINT_FAILED', e.message, { details: e.details, cause: e });
      throw e;
    }
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
    if (session) {
      const cap = Math.min(
        connector.currentLimitA ?? Infinity,
        (connector.powerLimitW ?? Infinity) / (cs.voltage * cs.phasesOf(charger).length),
        cs.maxCurrentOf(charger),
      );
      await sendTxLimit(cs, charger, session, enabled ? cap : 0);
    }
  }
  await cs.ctx.bus.publishValue(connectorIds(cs.options.prefix, charger.identity, connector.id).enabled, enabled);
  cs.loadManager?.replan('connector availability changed');
  return enabled;
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
