/**
 * What load management sees of the open sessions: phases, draw, minimum and maximum current
 * (with the operator caps, authorization and offline chargers folded in), priority, order and
 * charge mode (applied by the load manager, which knows the PV surplus).
 * Split from central.ts because it is the LoadManager's input, not charger state.
 */
import type { CentralSystem } from './central.js';
import type { LoadSessionInput, PhaseTriple } from './load-manager.js';

export function loadSessions(cs: CentralSystem): LoadSessionInput[] {
  const out: LoadSessionInput[] = [];
  for (const session of cs.sessions.openSessions()) {
    const charger = cs.chargers.get(session.charger);
    if (!charger) continue;
    const connector = cs.connector(charger, session.connectorId);
    const phases = cs.phasesOf(charger);
    const key = `${charger.identity}/${session.connectorId}`;
    const drawA: PhaseTriple = [0, 0, 0];
    for (const p of phases) drawA[p] = connector.currentsA[p] ?? 0;
    let maxA = cs.maxCurrentOf(charger);
    let capReason: string | undefined = `charger max ${maxA} A`;
    if (connector.currentLimitA !== undefined && connector.currentLimitA < maxA) {
      maxA = connector.currentLimitA;
      capReason = `operator current_limit ${maxA} A`;
    }
    if (connector.powerLimitW !== undefined) {
      const fromPower = Math.floor((connector.powerLimitW / (cs.voltage * phases.length)) * 10) / 10;
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
      const held = cs.loadManager?.appliedLimit(key) ?? maxA;
      minA = held;
      maxA = held;
      priority = Number.MAX_SAFE_INTEGER;
      capReason = `charger offline, holding its last limit ${held} A`;
    }
    out.push({
      key,
      phases,
      minA,
      maxA,
      priority,
      order: session.start,
      capReason,
      drawA,
      reportedAt: connector.currentsAt,
      startedAt: session.start,
      // An offline charger cannot take a new limit: its held limit is what it draws, whatever the mode.
      ...(charger.online ? { mode: connector.mode } : {}),
    });
  }
  return out;
}
