import type { AdapterType } from '../runtime/adapter.js';
import simulated from './simulated/index.js';
import mqtt from './mqtt/index.js';
import iridium from './iridium/index.js';
import bmsFiles from './bms-files/index.js';
import modbus from './modbus/index.js';
import ocpp from './ocpp/index.js';

/** Every adapter type this build knows, by `type` name. */
export const adapterTypes: ReadonlyMap<string, AdapterType> = new Map<string, AdapterType>(
  [simulated, mqtt, modbus, ocpp, bmsFiles, iridium].map((t) => [t.type, t as unknown as AdapterType]),
);
