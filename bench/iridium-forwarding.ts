/**
 * Stand-alone Iridium forwarding over a day, hour by hour (sendIntervalMs = 1 h), for
 * bench/iridium.bench.ts: what reaches the central side per credit when the link is up
 * every hour ("steady") and when it is down for some hours and comes back ("outage").
 *
 * Two policies over the same readings:
 * - before (issue 22): each send interval queued its newest values as one message and the
 *   rest as history messages; every queued message went out on its own after an outage.
 * - now: the adapter's forwarding queue (adapters/iridium/mo-queue.ts, on disk in a temp
 *   dir) packs alarms, newest values and history together when the link can send, and
 *   keeps one newest value per datapoint through an outage.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { MAX_MO_BYTES, creditsFor, type MoCodec, type Reading } from '../adapters/iridium/codec.js';
import { ForwardQueue } from '../adapters/iridium/mo-queue.js';
import type { CreditBudget } from '../adapters/iridium/budget.js';

export interface ForwardingFigures {
  messages: number;
  credits: number;
  readings: number;
}

const HOUR = 3_600_000;

/** Readings of each send interval (1 h), in arrival order. */
function intervals(readings: readonly Reading[]): Reading[][] {
  const start = readings[0]!.t - (readings[0]!.t % HOUR);
  const out: Reading[][] = [];
  for (const r of readings) (out[Math.floor((r.t - start) / HOUR)] ??= []).push(r);
  return out.map((x) => x ?? []);
}

/** The policy before issue 22: newest values as one message, the rest as history messages, per interval. */
export function forwardBefore(codec: MoCodec, readings: readonly Reading[], down: (hour: number) => boolean): ForwardingFigures {
  const waiting: Buffer[] = [];
  const sent: Buffer[] = [];
  let seq = 0;
  const pack = (list: readonly Reading[]): void => {
    for (let offset = 0; offset < list.length; ) {
      const { bytes, count } = codec.packPrefix(list.slice(offset, offset + MAX_MO_BYTES * 8), seq++);
      waiting.push(bytes);
      offset += count;
    }
  };
  intervals(readings).forEach((batch, hour) => {
    const newest = new Map<string, number>();
    batch.forEach((r, i) => {
      const j = newest.get(r.id);
      if (j === undefined || r.t >= batch[j]!.t) newest.set(r.id, i);
    });
    const keep = new Set(newest.values());
    pack(batch.filter((_, i) => keep.has(i)));
    pack(batch.filter((_, i) => !keep.has(i)));
    if (!down(hour)) sent.push(...waiting.splice(0));
  });
  sent.push(...waiting.splice(0)); // the link is back at the end of the day
  return {
    messages: sent.length,
    credits: sent.reduce((n, m) => n + creditsFor(m.length), 0),
    readings: sent.reduce((n, m) => n + codec.decode(m).readings.length, 0),
  };
}

/** The forwarding queue as the adapter runs it (durable writes included), with credits to spare. */
export async function forwardNow(codec: MoCodec, readings: readonly Reading[], down: (hour: number) => boolean): Promise<ForwardingFigures> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-iridium-'));
  try {
    let seq = 0;
    const queue = await ForwardQueue.open({ dataDir: dir, codec, takeSeq: async () => seq++, maxReadings: 100_000, log: pino({ level: 'silent' }) });
    const budget = { allows: () => true } as unknown as CreditBudget;
    const figures: ForwardingFigures = { messages: 0, credits: 0, readings: 0 };
    const drain = async (): Promise<void> => {
      for (let m = await queue.take(budget); m; m = await queue.take(budget)) {
        figures.messages++;
        figures.credits += creditsFor(m.bytes.length);
        figures.readings += codec.decode(m.bytes).readings.length;
        await queue.sent();
      }
    };
    for (const [hour, batch] of intervals(readings).entries()) {
      await queue.release(batch);
      if (!down(hour)) await drain();
    }
    await drain();
    return figures;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
