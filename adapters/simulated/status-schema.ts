import type { StatusSchema } from '../../runtime/adapter.js';

/**
 * The `simulated` adapter publishes no status `info` (its readings are its datapoints): the
 * card shows state, since and message only. Listed so every adapter type has a schema, and
 * so a field added to its status later gets a label here (the schema test checks coverage).
 */
export const simulatedStatusSchema: StatusSchema = { fields: {} };
