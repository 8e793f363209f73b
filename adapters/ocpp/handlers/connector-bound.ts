import { OutpostError } from '../../../core/errors.js';
import type { CentralSystem } from '../central.js';
import type { ChargerState } from '../charger-state.js';
import { connectorBound } from '../connector-count.js';

/**
 * Actions whose connectorId names the outlet a transaction runs on: OCPP 1.6 §6
 * (StartTransaction.req) requires connectorId > 0 there. StatusNotification.req and
 * MeterValues.req allow 0, the charger as a whole / its main meter (§4.7, §4.9).
 */
const TRANSACTION_ACTIONS = new Set(['StartTransaction']);

/**
 * Bounds the connectorId of every charger message that carries one, before its handler runs:
 * 0 (or 1 for a transaction) up to the charger's NumberOfConnectors (OCPP 1.6 §9.1.21): the
 * config's `connectors`, else the charger's own answer, else the profile's (connector-count.ts).
 * The JSON schema only says "integer", so without this a charger could make up any number
 * of connectors, each with its own datapoints and actuators. A refusal is counted, warned
 * about once per charger, and answered with a CALLERROR PropertyConstraintViolation
 * (OCPP-J 1.6 §4.2.3: a field holds a value that is not allowed).
 */
export function checkConnectorId(central: CentralSystem, charger: ChargerState, action: string, params: unknown): void {
  if (typeof params !== 'object' || params === null || !('connectorId' in params)) return;
  const connectorId = (params as { connectorId: unknown }).connectorId;
  if (typeof connectorId !== 'number') return; // the schema check answered it already
  const min = TRANSACTION_ACTIONS.has(action) ? 1 : 0;
  const { count: max, source } = connectorBound(charger);
  if (Number.isInteger(connectorId) && connectorId >= min && connectorId <= max) return;
  central.counters.connectorIdsRefused++;
  central.warnOnce(
    `connector-range:${charger.identity}`,
    { charger: charger.identity, action, connectorId, numberOfConnectors: max, from: source, profile: charger.profile.name },
    'charger named a connector it does not have, refused; if it has more, set `connectors` for it in the config',
  );
  central.scheduleStatus();
  throw new OutpostError('BAD_REQUEST', `connectorId ${connectorId} is out of range for ${action} (${min}..${max})`, {
    details: { ocppError: 'PropertyConstraintViolation' },
  });
}
