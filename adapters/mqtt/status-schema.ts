import type { StatusSchema } from '../../runtime/adapter.js';

/**
 * The `mqtt` adapter publishes no status `info`: a mapped message is a reading of its
 * datapoint, and refusals go to the log (index.ts). Listed so every adapter type has a schema,
 * and so a field added to its status later gets a label here (the schema test checks coverage).
 */
export const mqttStatusSchema: StatusSchema = { fields: {} };
