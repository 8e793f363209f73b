/**
 * One load run against one broker at one QoS: a subscriber worker, N publisher workers (one
 * raw connection each), released together; ends when every publisher is done and the
 * subscriber has seen no delivery for `stallMs` (it got everything it will get).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import {
  PUB_ACKED,
  PUB_SENT,
  PUB_SLOTS,
  SUB_CLOSED,
  SUB_DELIVERED,
  SUB_RETAINED,
  progressBuffer,
  progressViews,
  type PublisherData,
  type PublisherResult,
  type SubscriberData,
  type WorkerReport,
} from './protocol.js';

export interface LoadOptions {
  host: string;
  port: number;
  qos: 0 | 1;
  publishers: number;
  /** Per publisher. */
  messages: number;
  window: number;
  datapoints: number;
  /** Without a subscriber only the publishing side is measured (the sink check). */
  withSubscriber: boolean;
  /** Client id prefix, unique per run so no broker resumes an old session. */
  label: string;
  stallMs?: number;
}

export interface LoadResult {
  qos: 0 | 1;
  /** Total over all publishers. */
  messages: number;
  sent: number;
  acked: number;
  delivered: number;
  /** Retained replays the subscriber got on subscribing (not counted as delivered). */
  retained: number;
  unexpectedAcks: number;
  publishedPerSecond: number;
  ackedPerSecond: number;
  deliveredPerSecond: number;
  /** Seconds from 'go' to the last delivery (without a subscriber: until the broker took in / acknowledged everything). */
  seconds: number;
  subscriberClosed: boolean;
  /** Nothing moved for NO_PROGRESS_MS: the run was abandoned. */
  stuck: boolean;
  errors: string[];
  /** CPU affinity lists of this process's threads while the workers ran, e.g. ["1"]. */
  affinities: string[];
}

const POLL_MS = 50;
const NO_PROGRESS_MS = 30_000;
const READY_TIMEOUT_MS = 60_000;
const WRITE_BYTES = 64 * 1024;

interface Started {
  worker: Worker;
  ready: Promise<void>;
  done: Promise<PublisherResult | undefined>;
}

/** Starts a worker; `ready` rejects if it fails to connect, `done` resolves with its final report (if any). */
function startWorker(script: string, data: PublisherData | SubscriberData, errors: string[]): Started {
  const worker = new Worker(new URL(script, import.meta.url), { workerData: data });
  let onReady: () => void = () => {};
  let onFailed: (e: Error) => void = () => {};
  let onDone: (r: PublisherResult | undefined) => void = () => {};
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    onFailed = reject;
  });
  const done = new Promise<PublisherResult | undefined>((resolve) => (onDone = resolve));
  worker.on('message', (m: WorkerReport) => {
    if (m.type === 'ready') onReady();
    else if (m.type === 'failed') onFailed(new Error(`${data.clientId}: ${m.error}`));
    else {
      if (m.error) errors.push(`${data.clientId}: ${m.error}`);
      onDone(m);
    }
  });
  worker.on('error', (err) => {
    errors.push(`${data.clientId} crashed: ${err.message}`);
    onFailed(err);
    onDone(undefined);
  });
  worker.on('exit', () => {
    onFailed(new Error(`${data.clientId} exited before it was ready`));
    onDone(undefined);
  });
  return { worker, ready, done };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms / 1000} s`)), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Asks every worker to DISCONNECT and exit; terminates those that do not within 3 s. */
async function closeAll(workers: Worker[]): Promise<void> {
  await Promise.all(
    workers.map(async (w) => {
      const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
      w.postMessage({ type: 'close' });
      await withTimeout(exited, 3000, 'worker exit').catch(() => w.terminate());
    }),
  );
}

/** Linux: the distinct CPU affinity lists of this process's threads (main, workers, V8 and libuv helpers). */
export function threadAffinities(): string[] {
  try {
    const lists = readdirSync('/proc/self/task').map(
      (tid) => /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/self/task/${tid}/status`, 'utf8'))?.[1] ?? '?',
    );
    return [...new Set(lists)];
  } catch {
    return ['unknown'];
  }
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const progress = progressBuffer(o.publishers);
  const { counters, times } = progressViews(progress);
  const subSlot = o.publishers * PUB_SLOTS;
  const errors: string[] = [];
  const workers: Worker[] = [];
  try {
    if (o.withSubscriber) {
      const sub = startWorker(
        './subscriber.js',
        { host: o.host, port: o.port, clientId: `${o.label}-sub`, qos: o.qos, filter: 'outpost/dp/+/value', progress, slot: subSlot },
        errors,
      );
      workers.push(sub.worker);
      await withTimeout(sub.ready, READY_TIMEOUT_MS, 'subscriber');
    }
    const pubs = Array.from({ length: o.publishers }, (_, p) =>
      startWorker(
        './publisher.js',
        {
          host: o.host,
          port: o.port,
          clientId: `${o.label}-pub${p}`,
          qos: o.qos,
          publisher: p,
          publishers: o.publishers,
          messages: o.messages,
          datapoints: o.datapoints,
          window: o.window,
          writeBytes: WRITE_BYTES,
          progress,
        },
        errors,
      ),
    );
    workers.push(...pubs.map((s) => s.worker));
    await withTimeout(Promise.all(pubs.map((s) => s.ready)), READY_TIMEOUT_MS, 'publishers');
    const affinities = threadAffinities();

    const t0 = process.hrtime.bigint();
    for (const s of pubs) s.worker.postMessage({ type: 'go' });
    let results: Array<PublisherResult | undefined> | undefined;
    void Promise.all(pubs.map((s) => s.done)).then((r) => (results = r));
    const stuck = await waitUntilSettled(
      () => results !== undefined,
      () => sumProgress(counters),
      () => Atomics.load(counters, subSlot + SUB_DELIVERED),
      o.withSubscriber ? (o.stallMs ?? 2000) : 0,
    );
    // Read before our own DISCONNECT closes it: only a close by the broker counts.
    const subscriberClosed = o.withSubscriber && Atomics.load(counters, subSlot + SUB_CLOSED) === 1;
    await closeAll(workers);
    return summarise(o, t0, results ?? [], counters, times, subSlot, { errors, stuck, affinities, subscriberClosed });
  } catch (err) {
    await closeAll(workers);
    throw err;
  }
}

function sumProgress(counters: Int32Array): number {
  let sum = 0;
  for (let i = 0; i < counters.length; i++) sum += Atomics.load(counters, i);
  return sum;
}

/**
 * Polls until the publishers are done and deliveries have stalled for stallMs; returns true
 * if instead nothing at all moved for NO_PROGRESS_MS (a hung broker).
 */
async function waitUntilSettled(publishersDone: () => boolean, progress: () => number, delivered: () => number, stallMs: number): Promise<boolean> {
  let lastProgress = -1;
  let lastProgressAt = performance.now();
  let lastDelivered = -1;
  let lastDeliveredAt = performance.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    const now = performance.now();
    const p = progress();
    if (p !== lastProgress) [lastProgress, lastProgressAt] = [p, now];
    const d = delivered();
    if (d !== lastDelivered) [lastDelivered, lastDeliveredAt] = [d, now];
    if (publishersDone() && now - lastDeliveredAt >= stallMs) return false;
    if (now - lastProgressAt >= NO_PROGRESS_MS) return true;
  }
}

function summarise(
  o: LoadOptions,
  t0: bigint,
  results: Array<PublisherResult | undefined>,
  counters: Int32Array,
  times: BigInt64Array,
  subSlot: number,
  extra: { errors: string[]; stuck: boolean; affinities: string[]; subscriberClosed: boolean },
): LoadResult {
  let sent = 0;
  let acked = 0;
  let unexpectedAcks = 0;
  let lastWriteNs = t0;
  let lastAckNs = t0;
  // Every publisher must have seen its end (PINGRESP / last write), or the total rate means nothing.
  let allEnded = true;
  for (let p = 0; p < o.publishers; p++) {
    const r = results[p];
    if (!r || r.lastWriteNs === 0n) allEnded = false;
    // A publisher that never reported (crashed, or the run was stuck) counts what it had shown.
    sent += r?.sent ?? Atomics.load(counters, p * PUB_SLOTS + PUB_SENT);
    acked += r?.acked ?? Atomics.load(counters, p * PUB_SLOTS + PUB_ACKED);
    unexpectedAcks += r?.unexpectedAcks ?? 0;
    if (r && r.lastWriteNs > lastWriteNs) lastWriteNs = r.lastWriteNs;
    if (r && r.lastAckNs > lastAckNs) lastAckNs = r.lastAckNs;
  }
  const delivered = o.withSubscriber ? Atomics.load(counters, subSlot + SUB_DELIVERED) : 0;
  const lastDeliveryNs = delivered > 0 ? Atomics.load(times, 0) : t0;
  // NaN when the end never came (e.g. no PINGRESP: the broker died before taking everything in).
  const rate = (n: number, endNs: bigint) => (endNs > t0 ? n / (Number(endNs - t0) / 1e9) : n === 0 ? 0 : NaN);
  const endNs = o.withSubscriber ? lastDeliveryNs : o.qos === 1 ? lastAckNs : lastWriteNs;
  return {
    qos: o.qos,
    messages: o.messages * o.publishers,
    sent,
    acked,
    delivered,
    retained: o.withSubscriber ? Atomics.load(counters, subSlot + SUB_RETAINED) : 0,
    unexpectedAcks,
    publishedPerSecond: allEnded ? rate(sent, lastWriteNs) : NaN,
    ackedPerSecond: o.qos === 1 ? rate(acked, lastAckNs) : 0,
    deliveredPerSecond: rate(delivered, lastDeliveryNs),
    seconds: Number(endNs - t0) / 1e9,
    subscriberClosed: extra.subscriberClosed,
    stuck: extra.stuck,
    errors: extra.errors,
    affinities: extra.affinities,
  };
}
