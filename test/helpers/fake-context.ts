import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { pino } from 'pino';
import { OutpostError } from '../../core/errors.js';
import type { Clock } from '../../core/clock.js';
import { DatapointSchema, validatePoint, validateValue, type Datapoint, type Value, type ValueMessage } from '../../core/datapoint.js';
import type { AdapterContext, AdapterStatusDetail, SetpointHandler } from '../../runtime/adapter.js';
import { PortRegistry } from '../../runtime/ports.js';
import { ServiceRegistry } from '../../runtime/services.js';
import { Topics, topicMatches } from '../../runtime/topics.js';

/**
 * A clock a test moves by hand: `sleep` resolves when `advance` passes its time, in order,
 * and rejects with the signal's reason when aborted.
 */
export class FakeClock implements Clock {
  private timers: Array<{ at: number; resolve: () => void }> = [];

  constructor(private t = Date.UTC(2026, 0, 1)) {}

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const timer = {
        at: this.t + Math.max(0, ms),
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = (): void => {
        this.timers = this.timers.filter((x) => x !== timer);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.timers.push(timer);
    });
  }

  /** Sleepers waiting now. */
  get pending(): number {
    return this.timers.length;
  }

  /** Moves time on by `ms`, waking every sleeper due on the way (and letting its continuation run). */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      const next = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      this.t = Math.max(this.t, next.at);
      this.timers = this.timers.filter((x) => x !== next);
      next.resolve();
    }
    this.t = end;
    await settle();
  }
}

/** Lets pending promise continuations (and one macrotask turn) run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
  await new Promise((r) => setImmediate(r));
}

export interface FakeContext {
  ctx: AdapterContext;
  clock: FakeClock;
  /** Every value the adapter published, in order, as stored (validated, stamped). */
  values: Array<{ id: string } & ValueMessage>;
  /** Datapoints the adapter registered (and any the test added with `foreign`). */
  datapoints: Map<string, Datapoint>;
  /** Setpoint handlers registered with `onSet`, by datapoint id. */
  handlers: Map<string, SetpointHandler>;
  /** Every `setStatus` call, in order; `status` is the merged result. */
  statuses: AdapterStatusDetail[];
  readonly status: AdapterStatusDetail;
  /** Live subscriptions (removed when the adapter unsubscribes, or by `stop`). */
  subscriptions: Array<{ filter: string; handler: (topic: string, payload: Buffer) => void }>;
  /** Raw publications on the bus. */
  published: Array<{ topic: string; payload: Buffer; retain: boolean }>;
  /** `ctx.setpoint` calls (commands the adapter gave). */
  setpoints: Array<{ id: string; body: unknown }>;
  failures: unknown[];
  services: ServiceRegistry;
  /** The newest value published for `id`. */
  latest(id: string): Value | undefined;
  /** Plays a bus message to the adapter's matching subscriptions; returns how many got it. */
  deliver(topic: string, payload: string | Buffer | object): number;
  /** A datapoint owned by someone else (another adapter: `owner`, the config: `virtual`), for ownership tests. */
  foreign(id: string, owner: string, type?: Datapoint['type']): void;
  /** Sends a setpoint to the adapter as the host would (through its onSet handler). */
  set(id: string, v: Value): Promise<Awaited<ReturnType<SetpointHandler>>>;
  /** What the host does at stop: aborts the signal, withdraws services, drops subscriptions left behind. */
  stop(): void;
  /** Removes the data directory. */
  cleanup(): Promise<void>;
}

/**
 * A fake AdapterContext for adapter unit tests: no broker, no storage. It validates values
 * against the registered datapoints and enforces ownership as the adapter host does, and
 * records everything the adapter did.
 */
export async function fakeContext(
  options: { id?: string; prefix?: string; clock?: FakeClock; gateway?: { id: string; timezone: string } } = {},
): Promise<FakeContext> {
  const id = options.id ?? 'test';
  const clock = options.clock ?? new FakeClock();
  const topics = new Topics(options.prefix ?? 'outpost');
  const controller = new AbortController();
  const dataDir = await mkdtemp(join(tmpdir(), 'outpost-fake-ctx-'));
  const services = new ServiceRegistry();
  const disposers = new Set<() => void>();
  const datapoints = new Map<string, Datapoint>();
  const handlers = new Map<string, SetpointHandler>();
  const values: FakeContext['values'] = [];
  const statuses: AdapterStatusDetail[] = [];
  let status: AdapterStatusDetail = {};
  const subscriptions: FakeContext['subscriptions'] = [];
  const published: FakeContext['published'] = [];
  const setpoints: FakeContext['setpoints'] = [];
  const failures: unknown[] = [];

  const owned = (dpId: string): Datapoint => {
    const dp = datapoints.get(dpId);
    if (!dp) throw new OutpostError('DP_UNKNOWN', `unknown datapoint "${dpId}": register it before publishing values`);
    if (dp.adapter !== id) throw new OutpostError('DP_CONFLICT', `adapter "${id}" may not write datapoint ${dpId}: it is owned by "${dp.adapter}"`);
    return dp;
  };
  const tracked = (undo: () => void): (() => void) => {
    let done = false;
    const once = (): void => {
      if (done) return;
      done = true;
      disposers.delete(once);
      undo();
    };
    disposers.add(once);
    return once;
  };

  const ctx: AdapterContext = {
    id,
    log: pino({ level: 'silent' }),
    clock,
    signal: controller.signal,
    ports: new PortRegistry(),
    dataDir,
    gateway: options.gateway ?? { id: 'gw-test', timezone: 'UTC' },
    topics,
    services: {
      register: (kind, name, service) => tracked(services.register(kind, name, service)),
      get: (kind, name) => services.get(kind, name),
      watch: (kind, name, watcher) => tracked(services.watch(kind, name, watcher)),
    },
    bus: {
      async publishValue(dpId, v, o = {}) {
        const dp = owned(dpId);
        const msg = validateValue(dp, { v, t: o.t ?? clock.now(), q: o.q }, clock.now());
        values.push({ id: dpId, ...msg });
        return msg;
      },
      async publishValues(points) {
        const checked = points.map((p) => validatePoint(owned(p.id), p, clock.now()));
        values.push(...checked);
        return checked.length;
      },
      async publish(topic, payload, o = {}) {
        if (topics.isGatewayOwned(topic)) throw new OutpostError('TOPIC_PROTECTED', `${topic} is the gateway's`);
        published.push({ topic, payload: Buffer.from(payload), retain: o.retain ?? false });
      },
      async subscribe(filter, handler) {
        const sub = { filter, handler };
        subscriptions.push(sub);
        const undo = tracked(() => {
          const i = subscriptions.indexOf(sub);
          if (i >= 0) subscriptions.splice(i, 1);
        });
        return async () => undo();
      },
    },
    datapoints: {
      async register(defs, o = {}) {
        const list = (Array.isArray(defs) ? defs : [defs]).map((d) => {
          const parsed = DatapointSchema.safeParse({ ...d, adapter: id });
          if (!parsed.success) throw new OutpostError('DP_INVALID', parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
          const existing = datapoints.get(parsed.data.id);
          if (existing && existing.adapter !== id)
            throw new OutpostError('DP_CONFLICT', `datapoint ${parsed.data.id} is owned by adapter "${existing.adapter}", not "${id}"`);
          return parsed.data;
        });
        for (const dp of list) {
          datapoints.set(dp.id, dp);
          if (o.onSet) handlers.set(dp.id, o.onSet);
        }
        return list;
      },
      get: (dpId) => datapoints.get(dpId),
      list: () => [...datapoints.values()],
    },
    store: {
      async query(dpId) {
        return values.filter((x) => x.id === dpId).map(({ id: _id, ...m }) => m);
      },
      latest(dpId) {
        const last = values.filter((x) => x.id === dpId).at(-1);
        if (!last) return undefined;
        const { id: _id, ...m } = last;
        return m;
      },
    },
    http: {
      router: express.Router(),
      upgrade: () => undefined,
      source: () => ({ actor: { kind: 'system', name: 'test' } }) as never,
    },
    async setpoint(dpId, body) {
      setpoints.push({ id: dpId, body });
      const v = (body as { v: Value }).v;
      return { id: dpId, v, t: clock.now() };
    },
    audit: () => undefined,
    setStatus(detail) {
      statuses.push(detail);
      status = { ...status, ...detail };
    },
    fail(err) {
      failures.push(err);
    },
  };

  return {
    ctx,
    clock,
    values,
    datapoints,
    handlers,
    statuses,
    get status() {
      return status;
    },
    subscriptions,
    published,
    setpoints,
    failures,
    services,
    latest: (dpId) => values.filter((x) => x.id === dpId).at(-1)?.v,
    deliver(topic, payload) {
      const buf = Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload));
      if (controller.signal.aborted) return 0;
      let n = 0;
      for (const s of [...subscriptions]) {
        if (topicMatches(s.filter, topic) === undefined) continue;
        s.handler(topic, buf);
        n++;
      }
      return n;
    },
    foreign(dpId, owner, type = 'number') {
      datapoints.set(dpId, DatapointSchema.parse({ id: dpId, adapter: owner, type }));
    },
    async set(dpId, v) {
      const handler = handlers.get(dpId);
      if (!handler) throw new OutpostError('ADAPTER_UNAVAILABLE', `no setpoint handler for ${dpId}`);
      return handler({ id: dpId, v } as never);
    },
    stop() {
      controller.abort(new OutpostError('ADAPTER_UNAVAILABLE', 'adapter stopping'));
      for (const undo of [...disposers]) undo();
    },
    cleanup: () => rm(dataDir, { recursive: true, force: true }),
  };
}
