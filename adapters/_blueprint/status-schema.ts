import type { StatusSchema } from '../../runtime/adapter.js';
import type { StatusFieldsOf } from '../../runtime/status-schema.js';

/** What this adapter publishes as status `info` (index.ts, `ctx.setStatus`): type it, then label every key. */
export interface BlueprintStatusInfo {
  /** The last reading, before scaling. */
  watts: number;
}

/**
 * How the dashboard's adapter card shows the status (runtime/adapter.ts `StatusSchema`): a label
 * per key, with a unit, a format (count, duration, time, bytes, list, map, fields, rows …) and
 * an enumeration of words for coded values. `StatusFieldsOf` makes a key without a label a
 * compile error; test/adapters/status-schema.test.ts checks the schema and its coverage.
 */
const fields: StatusFieldsOf<BlueprintStatusInfo> = {
  watts: { label: 'Device power', format: 'number', unit: 'W' },
};

export const blueprintStatusSchema: StatusSchema = { fields };
