import { z } from 'zod';
import { defineAdapter, type AdapterContext, type AdapterType } from '../../runtime/adapter.js';

export interface DrivenAdapter {
  /** Pass in `startTestGateway(..., { types: [x.type] })`. */
  type: AdapterType;
  /** The running instance's context (undefined before start and after stop): the test publishes through it. */
  readonly ctx: AdapterContext | undefined;
}

/**
 * An adapter type with no options that a test drives: `start` (registering datapoints,
 * publishing a first batch) runs when the gateway starts the instance, then the test
 * publishes through `ctx` whenever it likes (a site meter, a source of junk readings).
 */
export function drivenAdapter(type: string, description: string, start: (ctx: AdapterContext) => Promise<void>): DrivenAdapter {
  let ctx: AdapterContext | undefined;
  const adapter = defineAdapter({
    type,
    description,
    schema: z.strictObject({}),
    create() {
      return {
        async start(c) {
          ctx = c;
          await start(c);
        },
        async stop() {
          ctx = undefined;
        },
      };
    },
  });
  return {
    type: adapter as unknown as AdapterType,
    get ctx() {
      return ctx;
    },
  };
}
