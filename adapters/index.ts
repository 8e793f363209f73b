import type { AdapterType } from '../runtime/adapter.js';
import simulated from './simulated/index.js';
import mqtt from './mqtt/index.js';
import iridium from './iridium/index.js';
import bmsFiles from './bms-files/index.js';

/** Every adapter type this build knows, by `type` name. */
export const adapterTypes: ReadonlyMap<string, AdapterType> = new Map<string, AdapterType>(
  [simulated, mqtt, iridium, bmsFiles].map((t) => [t.type, t as unknown as AdapterType]),
);
