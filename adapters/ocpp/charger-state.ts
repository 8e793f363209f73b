/**
 * The central system's picture of its chargers and connectors, and its counters: plain data
 * shared by central.ts, the message handlers and the helpers split off from central.ts, kept
 * apart so those can import the shapes without the CentralSystem class.
 */
import type { RPCClient } from 'ocpp-rpc';
import type { ChargerConfig } from './config.js';
import type { ChargerProfile } from './chargers.js';
import type { ChargeMode } from './charge-modes.js';

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
  /** Charge mode (charge-modes.ts): the `mode` actuator's stored value, else the charger's configured mode. */
  mode: ChargeMode;
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
  /**
   * NumberOfConnectors as the charger answered GetConfiguration (OCPP 1.6 §9.1.21), capped
   * (connector-count.ts); undefined until it gave a good answer. Kept across reconnects.
   */
  reportedConnectors?: number;
  /** The GetConfiguration NumberOfConnectors question out now; only the latest one's answer counts. */
  connectorQuery?: symbol;
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
