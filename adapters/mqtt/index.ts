import { z } from 'zod';
import { defineAdapter } from '../../runtime/adapter.js';
import { toOutpostError } from '../../core/errors.js';
import { datapointIdFor, extractValue } from './mapping.js';

const mappingSchema = z.strictObject({
  /** MQTT topic filter the devices publish on, e.g. `tele/+/SENSOR`. */
  topic: z.string().min(1).refine((t) => !t.startsWith('$'), 'system topics cannot be mapped'),
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
  schema: z.strictObject({ mappings: z.array(mappingSchema).default([]) }),
  create(options) {
    const unsubscribe: Array<() => Promise<void>> = [];
    return {
      async start(ctx) {
        const warned = new Set<string>();
        const registered = new Set<string>();
        for (const mapping of options.mappings) {
          const un = await ctx.bus.subscribe(mapping.topic, (topic, payload) => {
            const id = datapointIdFor(mapping, topic);
            const handle = async (): Promise<void> => {
              if (!id) throw new Error(`topic ${topic} gives no valid datapoint id from "${mapping.datapoint}"`);
              if (!registered.has(id)) {
                await ctx.datapoints.register({ id, kind: 'sensor', type: mapping.type, unit: mapping.unit, description: mapping.description ?? `from ${mapping.topic}`, meta: { topic: mapping.topic } });
                registered.add(id);
              }
              await ctx.bus.publishValue(id, extractValue(mapping, payload) as never);
            };
            handle().catch((err) => {
              const e = toOutpostError(err, 'VALUE_MALFORMED');
              const key = `${topic}|${e.code}`;
              if (warned.has(key)) return;
              if (warned.size > 1000) warned.clear();
              warned.add(key);
              ctx.log.warn({ topic, code: e.code, reason: e.message }, 'mapped MQTT message not stored (further ones like it are not logged)');
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
