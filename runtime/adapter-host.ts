import { mkdir } from 'node:fs/promises';
import { plainAddress } from './net.js';
import { join } from 'node:path';
import express from 'express';
import type { IncomingMessage } from 'node:http';
import { OutpostError, toOutpostError } from '../core/errors.js';
import type { Logger } from './log.js';
import type { Clock } from '../core/clock.js';
import type { AdapterContext, AdapterInstance, AdapterStatusDetail, AdapterType, UpgradeHandler } from './adapter.js';
import type { AdapterEntry } from './config/schema.js';
import type { Metrics } from './metrics.js';
import type { Bus } from './bus.js';
import type { Ingest } from './ingest.js';
import type { Topics } from './topics.js';
import type { DatapointRegistry } from './datapoints/registry.js';
import type { Store } from '../storage/store.js';
import type { PortRegistry } from './ports.js';
import type { AuditSink } from './audit/entry.js';
import { sourceOf } from './audit/actor.js';
import type { Principal } from './auth/roles.js';
import { ServiceRegistry } from './services.js';

/**
 * `error`: failed, a retry is scheduled (`info.retryInMs`). `failed`: the start failed with an
 * error no retry can mend (an OutpostError with `retryable: false`, e.g. a config or template
 * error): not retried until the gateway restarts.
 */
export type AdapterState = 'starting' | 'running' | 'error' | 'failed' | 'stopping' | 'stopped' | 'disabled';

export interface AdapterStatus extends AdapterStatusDetail {
  id: string;
  type: string;
  state: AdapterState;
  since: number;
  error?: { code: string; message: string };
  restarts: number;
}

export interface AdapterHostDeps {
  types: ReadonlyMap<string, AdapterType>;
  log: Logger;
  clock: Clock;
  bus: Bus;
  ingest: Ingest;
  registry: DatapointRegistry;
  store: Store;
  topics: Topics;
  metrics: Metrics;
  ports: PortRegistry;
  router: express.Router;
  upgrades: Map<string, UpgradeHandler>;
  dataDir: string;
  gateway: { id: string; timezone: string };
  stopTimeoutMs: number;
  /** Restart backoff: first delay and ceiling (ms). */
  backoff?: { initialMs: number; maxMs: number };
  /** The audit trail behind `ctx.audit`. */
  audit?: AuditSink;
  /** The client's address as the auth layer sees it (trusted proxies applied); default the socket peer. */
  clientAddress?: (req: IncomingMessage) => string;
  /** Raw retention as storage applies it, behind `ctx.retention` (absent: no retention runs). */
  retention?: AdapterContext['retention'];
  /** The gateway's service registry behind `ctx.services` (default: one of the host's own). */
  services?: ServiceRegistry;
}

interface Slot {
  entry: AdapterEntry;
  type: AdapterType;
  instance?: AdapterInstance;
  controller?: AbortController;
  status: AdapterStatus;
  attempts: number;
  runningSince?: number;
  retryTimer?: NodeJS.Timeout;
  log: Logger;
  /** Bumped on every start: a `fail` from an older run is ignored. */
  generation: number;
  /** Routes of the running instance; replaced on restart, cleared on stop. */
  router?: express.Router;
  /**
   * What the running instance attached through its context (bus subscriptions, services it
   * provides, service watchers): undone by the host when it stops, crashes or restarts.
   */
  disposers: Set<() => unknown>;
}

/**
 * Runs adapters independently: a failure to start, or a failure reported later, is
 * logged once, published on `outpost/adapter/<id>/status` and retried with backoff;
 * the others go on. `stop()` gets a time limit; adapters stop in reverse order.
 */
export class AdapterHost {
  private readonly slots: Slot[] = [];
  private stopping = false;
  private readonly services: ServiceRegistry;

  constructor(private readonly deps: AdapterHostDeps) {
    this.services = deps.services ?? new ServiceRegistry();
  }

  /** Creates every instance (no I/O) and starts the enabled ones. Never throws for one adapter's failure. */
  async start(entries: readonly AdapterEntry[]): Promise<void> {
    for (const entry of entries) {
      const type = this.deps.types.get(entry.type);
      if (!type) throw new OutpostError('CONFIG_INVALID', `unknown adapter type "${entry.type}"`);
      const slot: Slot = {
        entry,
        type,
        attempts: 0,
        generation: 0,
        disposers: new Set(),
        log: this.deps.log.child({ component: 'adapter', adapter: entry.id, type: entry.type }),
        status: { id: entry.id, type: entry.type, state: entry.enabled ? 'starting' : 'disabled', since: this.deps.clock.now(), restarts: 0 },
      };
      this.slots.push(slot);
      this.deps.router.use((req, res, next) => (slot.router ? slot.router(req, res, next) : next()));
    }
    await Promise.all(
      this.slots.map(async (slot) => {
        if (!slot.entry.enabled) return this.publishStatus(slot);
        await this.startSlot(slot);
      }),
    );
  }

  statuses(): AdapterStatus[] {
    return this.slots.map((s) => ({ ...s.status }));
  }

  private async startSlot(slot: Slot): Promise<void> {
    if (this.stopping) return;
    const generation = ++slot.generation;
    this.setState(slot, 'starting');
    const controller = new AbortController();
    slot.controller = controller;
    try {
      slot.instance = slot.type.create(slot.entry.options as never, { id: slot.entry.id });
      const dataDir = join(this.deps.dataDir, 'adapters', slot.entry.id);
      await mkdir(dataDir, { recursive: true });
      await slot.instance.start(this.context(slot, controller.signal, dataDir, generation));
      if (generation !== slot.generation || this.stopping) return;
      slot.runningSince = this.deps.clock.now();
      this.setState(slot, 'running');
      slot.log.info('adapter running');
    } catch (err) {
      if (generation !== slot.generation) return;
      const wrapped = new OutpostError('ADAPTER_START_FAILED', `${slot.entry.id}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
      // A config or template error fails every retry the same way: say so once and stop.
      if (err instanceof OutpostError && !err.retryable) await this.handlePermanentFailure(slot, wrapped, err);
      else await this.handleFailure(slot, wrapped);
    }
  }

  private context(slot: Slot, signal: AbortSignal, dataDir: string, generation: number): AdapterContext {
    const { deps } = this;
    const adapterId = slot.entry.id;
    const router = express.Router();
    slot.router = router;
    /** Runs `dispose` when the adapter stops (or now, when it has stopped already); returns the idempotent undo. */
    const track = <T>(dispose: () => T): (() => T | undefined) => {
      let done = false;
      const once = (): T | undefined => {
        if (done) return undefined;
        done = true;
        slot.disposers.delete(once);
        return dispose();
      };
      if (signal.aborted || slot.generation !== generation) once();
      else slot.disposers.add(once);
      return once;
    };
    const live = (): boolean => !signal.aborted && slot.generation === generation;
    return {
      id: adapterId,
      log: slot.log,
      topics: deps.topics,
      services: {
        register: (kind, name, service) => {
          // A late call from a run that is stopping provides nothing.
          if (!live()) return () => undefined;
          return track(this.services.register(kind, name, service));
        },
        get: (kind, name) => this.services.get(kind, name),
        watch: (kind, name, watcher) => track(this.services.watch(kind, name, (service) => (live() ? watcher(service) : undefined))),
      },
      clock: deps.clock,
      signal,
      ports: deps.ports,
      dataDir,
      gateway: deps.gateway,
      bus: {
        publishValue: (id, v, options = {}) =>
          this.reviving(
            adapterId,
            () => [id],
            () => {
              this.checkOwner(adapterId, [id]);
              return deps.ingest.accept(adapterId, id, { v, t: options.t, q: options.q });
            },
          ),
        publishValues: (points) =>
          this.reviving(
            adapterId,
            () => points.map((p) => p.id),
            () => {
              this.checkOwner(
                adapterId,
                points.map((p) => p.id),
              );
              return deps.ingest.acceptMany(adapterId, points);
            },
          ),
        publish: async (topic, payload, options) => {
          if (deps.topics.isGatewayOwned(topic)) {
            throw new OutpostError(
              'TOPIC_PROTECTED',
              `${adapterId} may not publish on ${topic}: topics under "${deps.topics.prefix}/" are the gateway's (values through publishValue, setpoints through ctx.setpoint, status through setStatus)`,
            );
          }
          return deps.bus.publish(topic, payload, options);
        },
        subscribe: async (filter, handler) => {
          if (!live()) return async () => undefined;
          // Nothing reaches a stopping adapter, even before the host has removed the subscription.
          const unsubscribe = await deps.bus.subscribe(filter, (topic, payload) => (live() ? handler(topic, payload) : undefined));
          const undo = track(unsubscribe);
          return async () => {
            await undo();
          };
        },
      },
      datapoints: {
        register: async (defs, options = {}) => {
          const list = Array.isArray(defs) ? defs : [defs];
          const out = await deps.registry.registerMany(
            list.map((def) => ({ ...def, adapter: adapterId })),
            options.onSet,
          );
          deps.metrics.datapoints.set(deps.registry.size);
          return out;
        },
        get: (id) => deps.registry.get(id),
        list: () => deps.registry.list(),
      },
      store: { query: (id, range) => deps.store.query(id, range), latest: (id) => deps.store.latest(id) },
      http: {
        router,
        upgrade: (prefix, handler) => {
          deps.upgrades.set(prefix, (req, socket, head) => (slot.generation === generation && !signal.aborted ? handler(req, socket, head) : socket.destroy()));
        },
        source: (req, locals) =>
          sourceOf(locals.principal as Principal | undefined, deps.clientAddress?.(req) ?? plainAddress(req.socket.remoteAddress ?? 'unknown')),
      },
      audit: (entry) => deps.audit?.record(entry),
      ...(deps.retention ? { retention: deps.retention } : {}),
      setpoint: (id, body) => deps.ingest.setpoint(id, body, `adapter:${adapterId}`),
      setStatus: (detail) => {
        if (slot.generation !== generation) return;
        slot.status = { ...slot.status, ...detail };
        if (detail.info) this.exportInfo(adapterId, detail.info);
        this.publishStatus(slot);
      },
      fail: (err) => {
        if (slot.generation !== generation || slot.status.state !== 'running') return;
        void this.handleFailure(slot, new OutpostError('ADAPTER_CRASHED', `${adapterId}: ${(err as Error)?.message ?? String(err)}`, { cause: err }));
      },
    };
  }

  /**
   * Runs a publication of an adapter; refused as unknown (nothing stored yet), the adapter's
   * datapoints among `ids` that were deleted while it ran are registered again and it runs once
   * more: a deleted datapoint comes back when its device reports it (runtime/datapoints/deletion.ts).
   */
  private async reviving<T>(adapter: string, ids: () => Iterable<string>, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      if (!(err instanceof OutpostError) || err.code !== 'DP_UNKNOWN') throw err;
      const unknown = [...ids()].filter((id) => this.deps.registry.get(id) === undefined);
      const back = await this.deps.registry.revive(adapter, unknown);
      if (back.length === 0) throw err;
      this.deps.metrics.datapoints.set(this.deps.registry.size);
      return run();
    }
  }

  /**
   * An adapter writes only its own datapoints: one owned by another adapter, defined in the
   * configuration (`virtual`) or auto-registered from plain MQTT is refused before anything is
   * stored (an adapter takes over a plain-MQTT datapoint by registering it). Unknown ids pass:
   * the ingest refuses them as DP_UNKNOWN (and `reviving` may bring a deleted one back).
   */
  private checkOwner(adapter: string, ids: Iterable<string>): void {
    for (const id of ids) {
      const owner = this.deps.registry.get(id)?.adapter;
      if (owner === undefined || owner === adapter) continue;
      const whose =
        owner === 'virtual'
          ? 'is defined in the configuration file (datapoints:)'
          : owner === 'mqtt'
            ? 'belongs to plain MQTT devices (register it to take it over)'
            : `is owned by adapter "${owner}"`;
      throw new OutpostError('DP_CONFLICT', `adapter "${adapter}" may not write datapoint ${id}: it ${whose}; nothing was stored`, { details: { id, owner } });
    }
  }

  /** Numeric status fields become `outpost_adapter_info{adapter,key}`; nested objects use dotted keys (two levels). */
  private exportInfo(adapter: string, info: Record<string, unknown>, prefix = '', depth = 0): void {
    for (const [k, v] of Object.entries(info)) {
      const key = prefix + k;
      if (typeof v === 'number' && Number.isFinite(v)) this.deps.metrics.adapterInfo.set({ adapter, key }, v);
      else if (typeof v === 'boolean') this.deps.metrics.adapterInfo.set({ adapter, key }, v ? 1 : 0);
      else if (v && typeof v === 'object' && !Array.isArray(v) && depth < 1) this.exportInfo(adapter, v as Record<string, unknown>, key + '.', depth + 1);
    }
  }

  private async handleFailure(slot: Slot, err: OutpostError): Promise<void> {
    slot.log.error({ code: err.code, err: (err.cause as Error) ?? err }, 'adapter failed');
    this.deps.metrics.errors.inc({ adapter: slot.entry.id, code: err.code });
    slot.status = { ...slot.status, error: { code: err.code, message: err.message } };
    await this.stopInstance(slot);
    this.setState(slot, 'error');
    if (this.stopping) return;
    // Reset the backoff when the adapter had been running for a while.
    if (slot.runningSince !== undefined && this.deps.clock.now() - slot.runningSince > 60_000) slot.attempts = 0;
    slot.runningSince = undefined;
    const { initialMs, maxMs } = this.deps.backoff ?? { initialMs: 1000, maxMs: 60_000 };
    const base = Math.min(maxMs, initialMs * 2 ** slot.attempts);
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    slot.attempts++;
    slot.status.restarts++;
    slot.status = { ...slot.status, info: { ...slot.status.info, retryInMs: delay } };
    this.publishStatus(slot);
    this.deps.metrics.adapterRestarts.inc({ adapter: slot.entry.id });
    slot.retryTimer = setTimeout(() => {
      slot.retryTimer = undefined;
      void this.startSlot(slot);
    }, delay);
    slot.retryTimer.unref();
  }

  /**
   * A start that failed with a non-retryable error (config, template): logged once, the
   * adapter `failed` with the reason on its status topic and dashboard card, no retry.
   */
  private async handlePermanentFailure(slot: Slot, err: OutpostError, reason: OutpostError): Promise<void> {
    slot.log.error(
      { code: reason.code, err: (err.cause as Error) ?? err },
      'adapter failed: not retried (the error is not retryable; fix the cause and restart the gateway)',
    );
    this.deps.metrics.errors.inc({ adapter: slot.entry.id, code: reason.code });
    slot.status = { ...slot.status, error: { code: reason.code, message: err.message } };
    if (slot.status.info) delete slot.status.info.retryInMs;
    await this.stopInstance(slot);
    slot.runningSince = undefined;
    this.setState(slot, 'failed');
  }

  private async stopInstance(slot: Slot): Promise<void> {
    const instance = slot.instance;
    slot.instance = undefined;
    slot.router = undefined;
    slot.controller?.abort(new OutpostError('ADAPTER_UNAVAILABLE', 'adapter stopping'));
    this.deps.registry.dropHandlers(slot.entry.id);
    if (!instance) return this.dispose(slot);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        instance.stop(),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new OutpostError('ADAPTER_STOP_TIMEOUT', `${slot.entry.id} did not stop within ${this.deps.stopTimeoutMs} ms`)),
            this.deps.stopTimeoutMs,
          );
        }),
      ]);
    } catch (err) {
      const e = toOutpostError(err);
      slot.log.error({ code: e.code, err: e.message }, 'adapter stop failed');
      this.deps.metrics.errors.inc({ adapter: slot.entry.id, code: e.code });
    } finally {
      clearTimeout(timer);
      await this.dispose(slot);
    }
  }

  /** Undoes what the instance attached through its context and did not undo itself. */
  private async dispose(slot: Slot): Promise<void> {
    const pending = [...slot.disposers];
    slot.disposers.clear();
    await Promise.all(
      pending.map(async (undo) => {
        try {
          await undo();
        } catch (err) {
          slot.log.warn({ err: (err as Error)?.message ?? String(err) }, 'adapter subscription not removed');
        }
      }),
    );
  }

  /** Stops all adapters in reverse order of configuration. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const slot of [...this.slots].reverse()) {
      if (slot.retryTimer) clearTimeout(slot.retryTimer);
      if (slot.status.state === 'disabled') continue;
      slot.generation++;
      this.setState(slot, 'stopping');
      await this.stopInstance(slot);
      this.setState(slot, 'stopped');
    }
  }

  private setState(slot: Slot, state: AdapterState): void {
    const clearError = state === 'running';
    slot.status = { ...slot.status, state, since: this.deps.clock.now() };
    if (clearError) {
      delete slot.status.error;
      if (slot.status.info) delete slot.status.info.retryInMs;
    }
    this.deps.metrics.adapterUp.set({ adapter: slot.entry.id, type: slot.entry.type }, state === 'running' ? 1 : 0);
    this.publishStatus(slot);
  }

  private publishStatus(slot: Slot): void {
    const { id: _id, type: _type, ...payload } = slot.status;
    this.deps.bus
      .publish(this.deps.topics.adapterStatus(slot.entry.id), JSON.stringify(payload), { retain: true })
      .catch((err: Error) => slot.log.debug({ err: err.message }, 'status publish failed'));
  }
}
