import type { StatusField, StatusSchema } from '../../runtime/adapter.js';
import type { StatusFieldsOf } from '../../runtime/status-schema.js';
import type { Counters } from './charger-state.js';
import type { Allocation } from './load-plan.js';

/**
 * The status `info` of an `ocpp` adapter as the dashboard shows it (plan-status.ts
 * `reportStatus`): counters, one row per charger, and the load-management plan.
 */

/** OCPP 1.6 §7.7 ChargePointStatus, as a technician says it. */
const CONNECTOR_STATUS: Record<string, string> = {
  Available: 'available',
  Preparing: 'preparing',
  Charging: 'charging',
  SuspendedEVSE: 'suspended by charger',
  SuspendedEV: 'suspended by car',
  Finishing: 'finishing',
  Reserved: 'reserved',
  Unavailable: 'unavailable',
  Faulted: 'faulted',
  unknown: 'no status yet',
};

/** Refusals of a charger's websocket connection (server.ts `authenticate`). */
const REFUSAL: Record<string, string> = {
  'wrong-path': 'wrong path',
  subprotocol: 'no ocpp1.6 subprotocol',
  'unknown-charger': 'unknown charger',
  'identity-collision': 'identity clashes with a known charger',
  'tls-required': 'TLS required',
  'no-password': 'no password',
  'wrong-password': 'wrong password',
};

const counterFields: StatusFieldsOf<Counters> = {
  connections: { label: 'Connections', format: 'count', help: 'Charger websocket connections accepted since start' },
  refused: { label: 'Connections refused', format: 'map', enum: REFUSAL },
  schemaViolations: { label: 'Schema violations', format: 'map', help: 'Messages that failed the OCPP 1.6 JSON schema, by the error code answered' },
  badFrames: { label: 'Bad frames', format: 'count', warnAbove: 0 },
  notImplemented: { label: 'Not implemented', format: 'count', help: 'Actions we answered NotImplemented' },
  outputViolations: { label: 'Own schema violations', format: 'count', warnAbove: 0, help: 'Our own output failed the schema: a bug, see the log' },
  dataTransfers: { label: 'Data transfers', format: 'count' },
  samplesSkipped: { label: 'Meter samples skipped', format: 'count' },
  clockSkewed: { label: 'Clock-skewed messages', format: 'count', warnAbove: 0 },
  valuesRejected: { label: 'Values rejected', format: 'count', warnAbove: 0 },
  unknownTransactions: { label: 'Unknown transactions', format: 'count', warnAbove: 0 },
  callFailures: { label: 'Call failures', format: 'count', warnAbove: 0, help: 'Our requests the charger answered with an error or not at all' },
  connectorIdsRefused: { label: 'Unknown connector ids', format: 'count', warnAbove: 0 },
};

/** One charger as plan-status.ts reports it. */
interface ChargerRow {
  id: string;
  online: boolean;
  profile: string;
  connectors: Record<string, string>;
  /** The connector bound (OCPP 1.6 §9.1.21) and where it came from (connector-count.ts). */
  numberOfConnectors: number;
  numberOfConnectorsFrom: 'config' | 'charger' | 'profile';
}

const chargerFields: StatusFieldsOf<ChargerRow> = {
  id: { label: 'Charger' },
  online: { label: 'Online', format: 'boolean', enum: { true: 'online', false: 'offline' }, tones: { true: 'good', false: 'bad' } },
  profile: { label: 'Profile' },
  connectors: { label: 'Connectors', format: 'map', enum: CONNECTOR_STATUS },
  numberOfConnectors: { label: 'Connector ids', format: 'count', help: 'Connector ids 1..n are accepted; others get a CALLERROR' },
  numberOfConnectorsFrom: {
    label: 'Connector count from',
    enum: { config: 'the config', charger: 'the charger (NumberOfConnectors)', profile: 'the charger profile' },
    detail: true,
  },
};

const PHASE = { 0: 'L1', 1: 'L2', 2: 'L3' };

const allocationFields: StatusFieldsOf<Allocation> = {
  key: { label: 'Session' },
  limitA: { label: 'Limit', format: 'number', unit: 'A' },
  phases: { label: 'Phases', format: 'list', enum: PHASE },
  paused: { label: 'Paused', format: 'boolean', tones: { true: 'warn' } },
  reason: { label: 'Why', detail: true },
  mode: { label: 'Mode', enum: { off: 'off', now: 'now (fast)', minpv: 'min + PV', pv: 'PV only' } },
};

const planFields: Record<string, StatusField> = {
  t: { label: 'Planned', format: 'time' },
  trigger: { label: 'Trigger' },
  reason: { label: 'Reason' },
  meterState: {
    label: 'Site meter',
    enum: { none: 'not used', fresh: 'fresh', stale: 'stale (fallback limit)' },
    tones: { fresh: 'good', stale: 'bad' },
  },
  availableA: { label: 'Available', format: 'phases', unit: 'A' },
  allocatedA: { label: 'Allocated', format: 'phases', unit: 'A' },
  allocations: { label: 'Allocations', format: 'rows', fields: allocationFields },
};

export const ocppStatusSchema: StatusSchema = {
  fields: {
    chargers: { label: 'Chargers', format: 'rows', fields: chargerFields },
    plan: { label: 'Load management', format: 'fields', fields: planFields },
    counters: { label: 'Counters', format: 'fields', fields: counterFields },
  },
};
