import { z } from 'zod';
import { defineAdapter, type AdapterContext } from '../../runtime/adapter.js';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import './errors.js';
import { blueprintStatusSchema, type BlueprintStatusInfo } from './status-schema.js';

/**
 * A copy-me adapter: everything the contract asks of one, and nothing more (README.md beside
 * this file). It polls one simulated device for a power reading, serves an actuator, and
 * follows another datapoint on the bus. Not registered in adapters/index.ts; copy the folder,
 * rename `blueprint` everywhere, replace the device, then add the type there.
 */

/** Options of one instance (besides `id`, `type`, `enabled`); strict, so a typo is a config error. */
const schema = z.strictObject({
  /** How often the device is read. */
  intervalMs: z.number().int().min(100).default(10_000),
  /** Multiplier applied to the raw reading (e.g. 0.001 for W to kW). */
  scale: z.number().default(1),
  /** A datapoint of someone else to follow (read only): its values arrive through `ctx.bus.subscribe`. */
  follow: z
    .string()
    .regex(/^[a-z0-9_.-]{1,128}$/)
    .optional(),
  /** The simulated device: what it answers. Real adapters open their transport in `start` instead. */
  device: z
    .strictObject({
      watts: z.number().default(1500),
      /** Answer nothing from this many reads on (tests of the degraded state). */
      silentAfter: z.number().int().min(0).optional(),
      /** A setting the device refuses: a start with it fails for good. */
      mode: z.enum(['normal', 'broken']).default('normal'),
    })
    .prefault({}),
});

export type BlueprintOptions = z.output<typeof schema>;

/** Stands in for a transport and a codec: reads the device once. */
class SimulatedDevice {
  private reads = 0;
  enabled = true;

  constructor(private readonly o: BlueprintOptions['device']) {}

  async read(): Promise<number> {
    this.reads++;
    if (this.o.silentAfter !== undefined && this.reads > this.o.silentAfter)
      throw new OutpostError('BLUEPRINT_DEVICE_TIMEOUT', `no answer to read ${this.reads}`);
    return this.enabled ? this.o.watts : 0;
  }
}

export default defineAdapter({
  type: 'blueprint',
  description: 'Copy-me example adapter (not registered): one polled reading, one actuator, one followed datapoint',
  // Labels, units and formats of the status `info` below, for the dashboard's adapter card.
  statusSchema: blueprintStatusSchema,
  schema,
  // No I/O here: everything that touches the world happens in `start`.
  create(options, { id }) {
    let loop: Promise<void> | undefined;

    return {
      async start(ctx: AdapterContext) {
        // A setting no retry can mend: a non-retryable code, and the host stops retrying.
        if (options.device.mode === 'broken') throw new OutpostError('BLUEPRINT_SETTING_INVALID', `device mode "broken" is not supported (adapter ${id})`);
        const device = new SimulatedDevice(options.device);
        const ids = { power: `${id}.power`, enabled: `${id}.enabled`, followed: `${id}.followed` };

        // Datapoints this adapter owns: only these may it write (the host refuses the others).
        await ctx.datapoints.register([
          { id: ids.power, kind: 'sensor', type: 'number', unit: 'W', description: 'power of the blueprint device' },
          { id: ids.followed, kind: 'sensor', type: 'number', description: `last value of ${options.follow ?? '(nothing followed)'}` },
        ]);
        await ctx.datapoints.register(
          { id: ids.enabled, kind: 'actuator', type: 'boolean', description: 'blueprint device on/off' },
          {
            // A setpoint to the actuator: apply it to the device, then report the state it reached.
            onSet: async ({ v }) => {
              device.enabled = v === true;
              await ctx.bus.publishValue(ids.enabled, device.enabled);
              return device.enabled;
            },
          },
        );
        await ctx.bus.publishValue(ids.enabled, device.enabled);

        // Someone else's datapoint: topics from ctx.topics (they follow broker.prefix). The
        // host removes this subscription when the adapter stops; unsubscribing in stop() is polite.
        if (options.follow) {
          await ctx.bus.subscribe(ctx.topics.value(options.follow), (_topic, payload) => {
            const msg = JSON.parse(payload.toString('utf8')) as { v: unknown };
            if (typeof msg.v !== 'number') return;
            ctx.bus.publishValue(ids.followed, msg.v).catch((err: unknown) => ctx.log.warn({ code: toOutpostError(err).code }, 'followed value not stored'));
          });
        }

        // The first read happens before `start` resolves: a device that does not answer at all
        // fails the start (retryable: the host tries again with backoff).
        await poll(ctx, device, ids.power, options.scale);
        // Later failures degrade the status; a fatal one would be `ctx.fail(err)`.
        loop = (async () => {
          while (!ctx.signal.aborted) {
            try {
              await ctx.clock.sleep(options.intervalMs, ctx.signal);
            } catch {
              return; // aborted: the adapter is stopping
            }
            try {
              await poll(ctx, device, ids.power, options.scale);
              ctx.setStatus({ degraded: false, message: 'reading', info: { watts: device.enabled ? options.device.watts : 0 } satisfies BlueprintStatusInfo });
            } catch (err) {
              const e = toOutpostError(err);
              ctx.setStatus({ degraded: true, message: `${e.code}: ${e.message}` });
            }
          }
        })();
      },
      async stop() {
        // The host aborted ctx.signal first: the loop ends at its next sleep.
        await loop;
        loop = undefined;
      },
    };
  },
});

async function poll(ctx: AdapterContext, device: SimulatedDevice, id: string, scale: number): Promise<void> {
  const watts = await device.read();
  await ctx.bus.publishValue(id, watts * scale);
}
