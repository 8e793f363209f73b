import type { DatapointInput } from '../../core/datapoint.js';
import { normaliseUnit, parseSampledNumber, type OcppUnit } from './codec.js';

/**
 * Charger/connector → datapoints. Ids: `<prefix>.<charger>.<connector>.<quantity>`, where
 * `<charger>` is the charge point identity made id-safe and connector 0 is the charger as a
 * whole (OCPP 1.6 §3.3: connector 0 is the main meter / the whole charge point).
 */

/** Lower-case, `[a-z0-9_-]` only, so any OCPP identity gives a valid datapoint id segment. */
export function chargerKey(identity: string): string {
  const key = identity
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return (key || 'charger').slice(0, 48);
}

export function connectorPrefix(prefix: string, identity: string, connectorId: number): string {
  return `${prefix}.${chargerKey(identity)}.${connectorId}`;
}

export interface ConnectorIds {
  status: string;
  errorCode: string;
  power: string;
  currents: [string, string, string];
  energy: string;
  sessionEnergy: string;
  currentLimit: string;
  powerLimit: string;
  enabled: string;
  /** Charge mode actuator (off | now | minpv | pv). */
  mode: string;
  /** Current the load manager granted (A per phase), 0 when paused. */
  allocated: string;
}

export function connectorIds(prefix: string, identity: string, connectorId: number): ConnectorIds {
  const p = connectorPrefix(prefix, identity, connectorId);
  return {
    status: `${p}.status`,
    errorCode: `${p}.error_code`,
    power: `${p}.power`,
    currents: [`${p}.current_l1`, `${p}.current_l2`, `${p}.current_l3`],
    energy: `${p}.energy`,
    sessionEnergy: `${p}.session_energy`,
    currentLimit: `${p}.current_limit`,
    powerLimit: `${p}.power_limit`,
    enabled: `${p}.enabled`,
    mode: `${p}.mode`,
    allocated: `${p}.allocated_current`,
  };
}

export function chargerIds(prefix: string, identity: string): { online: string } {
  return { online: `${prefix}.${chargerKey(identity)}.online` };
}

/** Sensor datapoints every connector gets up front; further measurands are registered on first sight. */
export function connectorSensorDefs(prefix: string, identity: string, connectorId: number): DatapointInput[] {
  const ids = connectorIds(prefix, identity, connectorId);
  const meta = { charger: identity, connector: connectorId };
  const defs: DatapointInput[] = [
    { id: ids.status, type: 'string', description: `OCPP connector status of ${identity}/${connectorId}`, meta },
    { id: ids.errorCode, type: 'string', description: `OCPP error code of ${identity}/${connectorId}`, meta },
    { id: ids.power, type: 'number', unit: 'W', description: `Active power import of ${identity}/${connectorId}`, meta },
    ...ids.currents.map((id, i) => ({ id, type: 'number' as const, unit: 'A', description: `Current on L${i + 1} of ${identity}/${connectorId}`, meta })),
    { id: ids.energy, type: 'number', unit: 'kWh', description: `Energy import register of ${identity}/${connectorId}`, meta: { ...meta, counter: true } },
  ];
  if (connectorId > 0) {
    defs.push(
      { id: ids.sessionEnergy, type: 'number', unit: 'kWh', description: `Energy of the running session on ${identity}/${connectorId}`, meta },
      { id: ids.allocated, type: 'number', unit: 'A', description: `Current granted by load management to ${identity}/${connectorId}`, meta },
    );
  }
  return defs;
}

export interface SampledValueIn {
  value: string;
  context?: string;
  format?: 'Raw' | 'SignedData';
  measurand?: string;
  phase?: string;
  location?: string;
  unit?: OcppUnit;
}

export interface Reading {
  /** Datapoint id suffix after the connector prefix, e.g. `current_l1`, `energy`. */
  suffix: string;
  value: number;
  unit: string;
  measurand: string;
  phase?: string;
}

const MEASURAND_SUFFIX: Record<string, string> = {
  'Energy.Active.Import.Register': 'energy',
  'Energy.Active.Export.Register': 'energy_export',
  'Energy.Reactive.Import.Register': 'energy_reactive_import',
  'Energy.Reactive.Export.Register': 'energy_reactive_export',
  'Energy.Active.Import.Interval': 'energy_interval',
  'Energy.Active.Export.Interval': 'energy_export_interval',
  'Energy.Reactive.Import.Interval': 'energy_reactive_import_interval',
  'Energy.Reactive.Export.Interval': 'energy_reactive_export_interval',
  'Power.Active.Import': 'power',
  'Power.Active.Export': 'power_export',
  'Power.Offered': 'power_offered',
  'Power.Reactive.Import': 'power_reactive_import',
  'Power.Reactive.Export': 'power_reactive_export',
  'Power.Factor': 'power_factor',
  'Current.Import': 'current',
  'Current.Export': 'current_export',
  'Current.Offered': 'current_offered',
  Voltage: 'voltage',
  Frequency: 'frequency',
  Temperature: 'temperature',
  SoC: 'soc',
  RPM: 'rpm',
};

/** Default unit per measurand when the sample has none (OCPP 1.6 §7.31: Wh for energy). */
function defaultUnit(measurand: string, energyUnit: 'Wh' | 'kWh'): OcppUnit | undefined {
  if (measurand.startsWith('Energy.Reactive')) return 'varh';
  if (measurand.startsWith('Energy.')) return energyUnit;
  if (measurand.startsWith('Power.Reactive')) return 'var';
  if (measurand.startsWith('Power.Active') || measurand === 'Power.Offered') return 'W';
  if (measurand.startsWith('Current.')) return 'A';
  if (measurand === 'Voltage') return 'V';
  if (measurand === 'SoC') return 'Percent';
  if (measurand === 'Temperature') return 'Celsius';
  return undefined;
}

/** `L1`, `L1-N` → `_l1`; `L1-L2` → `_l1_l2`; `N` → `_n`. */
function phaseSuffix(phase: string | undefined): string {
  if (!phase) return '';
  return '_' + phase.replace(/-N$/, '').toLowerCase().replace('-', '_');
}

function locationSuffix(location: string | undefined): string {
  if (!location || location === 'Outlet' || location === 'EV') return '';
  return '_' + location.toLowerCase();
}

/**
 * One SampledValue → a reading, or a reason why not. SignedData samples carry an opaque
 * signature, not a number, and are skipped (they stay in the session's raw meter values).
 */
export function readSample(sample: SampledValueIn, energyUnit: 'Wh' | 'kWh'): Reading | { skip: string } {
  if (sample.format === 'SignedData') return { skip: 'signed data' };
  const measurand = sample.measurand ?? 'Energy.Active.Import.Register';
  const base = MEASURAND_SUFFIX[measurand];
  if (!base) return { skip: `unknown measurand ${measurand}` };
  const n = parseSampledNumber(sample.value);
  if (n === undefined) return { skip: `value "${String(sample.value).slice(0, 20)}" is not a number` };
  const unit = sample.unit ?? defaultUnit(measurand, energyUnit);
  const norm = unit ? normaliseUnit(n, unit) : { value: n, unit: '' };
  return {
    suffix: base + phaseSuffix(sample.phase) + locationSuffix(sample.location),
    value: Math.round(norm.value * 1e6) / 1e6,
    unit: norm.unit,
    measurand,
    ...(sample.phase ? { phase: sample.phase } : {}),
  };
}
