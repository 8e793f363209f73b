import type { Value } from '../../../core/datapoint.js';
import { parseOcppTime } from '../codec.js';
import { connectorIds, connectorPrefix, readSample, type SampledValueIn } from '../mapping.js';
import type { CentralSystem } from '../central.js';
import type { ChargerState } from '../charger-state.js';
import type { MeterValueRecord } from '../sessions.js';
import type { ActionHandler } from './types.js';

export interface MeterValueIn {
  timestamp: string;
  sampledValue: SampledValueIn[];
}

const PHASE_SUFFIX = ['current_l1', 'current_l2', 'current_l3'] as const;
/** A sample older than this on arrival is history, not the car's present draw. */
const RECENT_SAMPLE_MS = 60_000;

/**
 * Turns meter values (MeterValues.req, StopTransaction.req transactionData) into datapoint
 * values, connector state for load management, and session records. Every measurand,
 * phase and unit of OCPP 1.6 §7.31 is mapped; unparseable samples are counted and skipped.
 */
export async function ingestMeterValues(
  central: CentralSystem,
  charger: ChargerState,
  connectorId: number,
  transactionId: number | undefined,
  meterValues: MeterValueIn[],
): Promise<void> {
  await central.ensureDatapoints(charger, connectorId);
  const connector = central.connector(charger, connectorId);
  const prefix = connectorPrefix(central.options.prefix, charger.identity, connectorId);
  const points: Array<{ id: string; v: Value; t: number }> = [];
  const records: MeterValueRecord[] = [];
  let newest = -Infinity;
  let latestEnergyWh: number | undefined;
  /** Every energy register reading, for the session's cost per interval (session-cost.ts). */
  const energyReadings: Array<{ t: number; wh: number }> = [];
  const chargerPhases = central.phasesOf(charger);
  let currentsSet = false;
  for (const mv of meterValues) {
    const t = central.sampleTime(parseOcppTime(mv.timestamp));
    records.push({ t, sampledValue: mv.sampledValue });
    const isNewest = t >= newest;
    if (isNewest) newest = t;
    for (const sample of mv.sampledValue) {
      const reading = readSample(sample, charger.profile.defaultEnergyUnit);
      if ('skip' in reading) {
        central.counters.samplesSkipped++;
        central.warnOnce(`sample:${charger.identity}:${reading.skip}`, { charger: charger.identity, reason: reading.skip }, 'meter sample skipped');
        continue;
      }
      const id = `${prefix}.${reading.suffix}`;
      await central.ensureMeasurand(id, reading.unit, charger, connectorId, reading.measurand);
      points.push({ id, v: reading.value, t });
      if (reading.suffix === 'energy') energyReadings.push({ t, wh: reading.value * 1000 });
      if (!isNewest) continue;
      // Connector state for load management: the newest reading of each kind.
      if (reading.suffix === 'power') connector.powerW = reading.value;
      else if (reading.suffix === 'energy') {
        connector.energyWh = reading.value * 1000;
        latestEnergyWh = connector.energyWh;
      } else if ((PHASE_SUFFIX as readonly string[]).includes(reading.suffix)) {
        connector.currentsA[PHASE_SUFFIX.indexOf(reading.suffix as (typeof PHASE_SUFFIX)[number])] = reading.value;
        currentsSet = true;
      } else if (reading.suffix === 'current') {
        // Current without a phase: read as the current on each phase the charger uses.
        for (const p of chargerPhases) connector.currentsA[p] = reading.value;
        currentsSet = true;
      }
    }
  }
  // Load management times a report by its arrival. Values queued while the charger was offline
  // (sent right after it reconnects, sampled long ago) say nothing about what the car draws now;
  // a charger connected for a while sends live values whatever its clock says.
  const arrived = central.ctx.clock.now();
  const live = newest >= arrived - RECENT_SAMPLE_MS || (charger.connectedAt !== undefined && charger.connectedAt < arrived - RECENT_SAMPLE_MS);
  if (currentsSet && live) connector.currentsAt = arrived;
  const byId = transactionId !== undefined ? central.sessions.getOpen(transactionId) : undefined;
  // Only the charger's own session: transaction ids are sequential and easy to guess.
  const session =
    transactionId !== undefined
      ? byId?.charger === charger.identity
        ? byId
        : undefined
      : connectorId > 0
        ? central.sessions.activeOn(charger.identity, connectorId)
        : undefined;
  if (session) {
    const updated = await central.sessions.addMeterValues(session.id, records, latestEnergyWh, energyReadings);
    if (updated && latestEnergyWh !== undefined)
      points.push({ id: connectorIds(central.options.prefix, charger.identity, connectorId).sessionEnergy, v: updated.energyKwh, t: newest });
  }
  await central.publish(points);
  if (session) central.loadManager?.replan(`meter values ${charger.identity}/${connectorId}`);
}

export const meterValues: ActionHandler<{ connectorId: number; transactionId?: number; meterValue: MeterValueIn[] }> = async (central, charger, params) => {
  await ingestMeterValues(central, charger, params.connectorId, params.transactionId, params.meterValue);
  return {};
};
