import type { AdapterContext } from '../../runtime/adapter.js';
import { toOutpostError } from '../../core/errors.js';
import type { Reading } from './codec.js';
import type { ForwardQueue } from './mo-queue.js';

export interface ForwardedDatapoint {
  id: string;
  type: 'number' | 'boolean';
  forward: boolean;
  alarm: boolean;
}

export interface ForwardingOptions {
  datapoints: readonly ForwardedDatapoint[];
  sendIntervalMs: number;
  /** Readings buffered between two send intervals; the oldest are dropped beyond it. */
  maxBufferedReadings: number;
}

/**
 * Stand-alone forwarding: bus values of the table's datapoints go to the forwarding queue
 * (mo-queue.ts). An alarm datapoint becoming true is queued at once, on disk, and sent
 * first; other readings are buffered and released to the queue every `sendIntervalMs`
 * (or on `flush`, e.g. the MT command `send_now`).
 */
export async function startForwarding(
  ctx: Pick<AdapterContext, 'bus' | 'log' | 'topics'>,
  options: ForwardingOptions,
  queue: ForwardQueue,
  notify: () => void,
): Promise<{ flush(): void; stop(): Promise<void> }> {
  const buffered: Reading[] = [];
  const last = new Map<string, unknown>();
  const unsubscribe: Array<() => Promise<void>> = [];
  const flush = (): void => {
    if (buffered.length === 0) return;
    const batch = buffered.splice(0);
    queue.release(batch).then(notify, (err: unknown) => {
      const e = toOutpostError(err);
      // Still queued in memory (sent if the link can); only a restart before that loses them.
      ctx.log.warn({ code: e.code, reason: e.message, readings: batch.length }, 'Iridium forwarding queue not saved');
      notify();
    });
  };
  for (const d of options.datapoints.filter((x) => x.forward)) {
    const un = await ctx.bus.subscribe(ctx.topics.value(d.id), (_topic, payload) => {
      let msg: { v: unknown; t: number; q?: 'stale' | 'bad' };
      try {
        msg = JSON.parse(payload.toString('utf8'));
      } catch {
        return; // the gateway publishes validated JSON on value topics; nothing else is ours to read
      }
      const v = msg.v === null ? null : d.type === 'boolean' ? Boolean(msg.v) : typeof msg.v === 'number' ? msg.v : undefined;
      if (v === undefined) return;
      const reading: Reading = msg.q ? { id: d.id, t: msg.t, v, q: msg.q } : { id: d.id, t: msg.t, v };
      const previous = last.get(d.id);
      last.set(d.id, v);
      if (d.alarm && v && previous !== v) {
        queue.addAlarm(reading).then(notify, (err: unknown) => {
          ctx.log.error({ code: toOutpostError(err).code, reason: toOutpostError(err).message, id: d.id }, 'Iridium alarm not queued durably');
          notify();
        });
        return;
      }
      if (buffered.length >= options.maxBufferedReadings) buffered.shift();
      buffered.push(reading);
    });
    unsubscribe.push(un);
  }
  const timer = setInterval(flush, options.sendIntervalMs);
  return {
    flush,
    async stop() {
      clearInterval(timer);
      await Promise.all(unsubscribe.splice(0).map((un) => un()));
      // What was buffered goes to the queue on disk: sent after the restart, not lost with it.
      if (buffered.length > 0) {
        await queue
          .release(buffered.splice(0))
          .catch((err: unknown) =>
            ctx.log.warn({ code: toOutpostError(err).code, reason: toOutpostError(err).message }, 'Iridium readings buffered at stop not saved'),
          );
      }
    },
  };
}
