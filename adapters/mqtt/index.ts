import { z } from 'zod';
import { defineAdapter } from '../../runtime/adapter.js';
import { warnOnce } from '../../runtime/log.js';
import { toOutpostError } from '../../core/errors.js';
import { datapointIdFor, extractValue } from './mapping.js';
import { mqttStatusSchema } from './status-schema.js';
import { DATAPOINT_ID } from '../../core/datapoint.js';

const mappingSchema = z.strictObject({
  /** MQTT topic filter the devices publish on, e.g. `tele/+/SENSOR`. */
  topic: z
    .string()
    .min(1)
    .refine((t) => !t.startsWith('$'), 'system topics cannot be mapped'),
  /** Datapoint id template; `{1}` is the first wildcard level matched. */
  datapoint: z.string().min(1),
  /** Dotted path into a JSON payload, e.g. `ENERGY.Power`; omit for a plain payload. */
  path: z.string().optional(),
  type: z.enum(['number', 'boolean', 'string', 'json']).default('number'),
  unit: z.string().optional(),
  description: z.string().optional(),
  /** Multiplier applied to numbers (e.g. 0.001 for Wh → kWh). */
  scale: z.number().default(1),
});

/**
 * Plain MQTT devices. Values published on `outpost/dp/<id>/value` are taken by the
 * broker itself; this adapter maps devices that publish on their own topics (Tasmota,
 * Shelly, custom firmware) to datapoints.
 */
export default defineAdapter({
  type: 'mqtt',
  description: 'Maps MQTT device topics (Tasmota, Shelly, …) to datapoints',
  statusSchema: mqttStatusSchema,
  schema: z.strictObject({ mappings: z.array(mappingSchema).default([]) }),
  check(options) {
    // Every reading of a mapping whose ids can never be valid would be dropped: say so now.
    return options.mappings.flatMap((m, i) => {
      const wildcards = m.topic.split('/').filter((level) => level === '+' || level === '#').length;
      const refs = [...m.datapoint.matchAll(/\{(\d+)\}/g)].map((r) => Number(r[1]));
      const bad = refs.filter((n) => n < 1 || n > wildcards);
      if (bad.length) return [{ path: `mappings.${i}.datapoint`, message: `{${bad[0]}} names no wildcard level of "${m.topic}" (it has ${wildcards})` }];
      if (!DATAPOINT_ID.test(m.datapoint.replace(/\{\d+\}/g, 'x')))
        return [{ path: `mappings.${i}.datapoint`, message: `"${m.datapoint}" gives no valid datapoint id (lower-case letters, digits, _ . -)` }];
      return [];
    });
  },
  create(options) {
    const unsubscribe: Array<() => Promise<void>> = [];
    return {
      async start(ctx) {
        const warn = warnOnce(ctx.log);
        const registered = new Set<string>();
        for (const mapping of options.mappings) {
          const un = await ctx.bus.subscribe(mapping.topic, (topic, payload) => {
            const id = datapointIdFor(mapping, topic);
            const handle = async (): Promise<void> => {
              if (!id) throw new Error(`topic ${topic} gives no valid datapoint id from "${mapping.datapoint}"`);
              if (!registered.has(id)) {
                await ctx.datapoints.register({
                  id,
                  kind: 'sensor',
                  type: mapping.type,
                  unit: mapping.unit,
                  description: mapping.description ?? `from ${mapping.topic}`,
                  meta: { topic: mapping.topic },
                });
                registered.add(id);
              }
              await ctx.bus.publishValue(id, extractValue(mapping, payload) as never);
            };
            handle().catch((err) => {
              const e = toOutpostError(err, 'VALUE_MALFORMED');
              warn(`${topic}|${e.code}`, { topic, code: e.code, reason: e.message }, 'mapped MQTT message not stored (further ones like it are not logged)');
            });
          });
          unsubscribe.push(un);
        }
      },
      async stop() {
        await Promise.all(unsubscribe.splice(0).map((un) => un()));
      },
    };
  },
});
