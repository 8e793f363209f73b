import type { AdapterType } from '../runtime/adapter.js';
import simulated from './simulated/index.js';
import mqtt from './mqtt/index.js';

/** Every adapter type this build knows, by `type` name. */
export const adapterTypes: ReadonlyMap<string, AdapterType> = new Map<string, AdapterType>(
  [simulated, mqtt].map((t) => [t.type, t as unknown as AdapterType]),
);
