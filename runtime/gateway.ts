import { mkdir } from 'node:fs/promises';
import { resolve, join } from 'node:path';
import type { Server } from 'node:http';
import type { Config } from './config/schema.js';
import type { Logger } from './log.js';
import { systemClock, type Clock } from './clock.js';
import { Bus } from './bus.js';
import { Topics } from './topics.js';
import { Metrics } from './metrics.js';
import { DatapointRegistry } from './datapoints/registry.js';
import { Ingest } from './ingest.js';
import { AdapterHost } from './adapter-host.js';
import { PortRegistry } from './ports.js';
import { createHttp, listen } from './http/server.js';
import { apiRoutes } from './http/api.js';
import type { AdapterType } from './adapter.js';
import { LevelStore } from '../storage/level-store.js';
import { MemoryStore } from '../storage/memory-store.js';
import type { Store } from '../storage/store.js';
import { VERSION } from './version.js';

export interface GatewayOptions {
  config: Config;
  log: Logger;
  adapterTypes: ReadonlyMap<string, AdapterType>;
  clock?: Clock;
  /** Restart backoff of failed adapters (tests shorten it). */
  backoff?: { initialMs: number; maxMs: number };
}

export interface GatewayAddresses {
  mqttPort?: number;
  httpPort: number;
  httpUrl: string;
}

/** Composition root: storage → registry → bus → HTTP → adapters; stopped in reverse. */
export class Gateway {
  readonly metrics = new Metrics();
  readonly clock: Clock;
  readonly topics: Topics;
  store!: Store;
  registry!: DatapointRegistry;
  bus!: Bus;
  ingest!: Ingest;
  host: AdapterHost | undefined;
  private http: Server | undefined;
  private stopped = false;

  constructor(private readonly o: GatewayOptions) {
    this.clock = o.clock ?? systemClock;
    this.topics = new Topics(o.config.broker.prefix);
  }

  async start(): Promise<GatewayAddresses> {
    const { config, log } = this.o;
    const dataDir = resolve(config.dataDir);
    await mkdir(dataDir, { recursive: true });
    const startedAt = this.clock.now();

    this.store =
      config.storage.engine === 'memory'
        ? new MemoryStore()
        : new LevelStore({ path: join(dataDir, 'db'), sync: config.storage.sync, maxBatch: config.storage.maxBatch, maxPending: config.storage.maxPending });
    await this.store.open();

    this.registry = new DatapointRegistry(this.store, log.child({ component: 'datapoints' }));
    await this.registry.load();
    for (const dp of config.datapoints) await this.registry.register({ ...dp, adapter: 'virtual' });

    this.bus = await Bus.create({ log: log.child({ component: 'broker' }), anonymous: config.broker.anonymous, users: config.broker.users });
    this.ingest = new Ingest({
      store: this.store,
      registry: this.registry,
      bus: this.bus,
      topics: this.topics,
      metrics: this.metrics,
      log: log.child({ component: 'ingest' }),
      clock: this.clock,
      unknownDatapoints: config.broker.unknownDatapoints,
    });
    this.bus.guard = this.ingest.guard;
    this.registry.onChange((dp) => void this.bus.publish(this.topics.meta(dp.id), JSON.stringify(dp), { retain: true }));

    // Retained state a subscriber expects right after a restart: metadata and latest values.
    for (const dp of this.registry.list()) {
      await this.bus.publish(this.topics.meta(dp.id), JSON.stringify(dp), { retain: true });
      const latest = this.store.latest(dp.id);
      if (latest) await this.bus.publish(this.topics.value(dp.id), JSON.stringify(latest), { retain: true });
    }
    await this.bus.publish(this.topics.gatewayStatus(), JSON.stringify({ state: 'online', since: startedAt, version: VERSION }), { retain: true });

    let mqttPort: number | undefined;
    if (config.broker.mqtt.enabled) mqttPort = await this.bus.listen(config.broker.mqtt.host, config.broker.mqtt.port);

    const http = createHttp({
      log: log.child({ component: 'http' }),
      tokens: config.http.tokens,
      maxBodyBytes: config.http.maxBodyBytes,
      bus: this.bus,
      websocketPath: config.broker.websocket.enabled ? config.broker.websocket.path : undefined,
    });
    http.api.use(
      apiRoutes({
        registry: this.registry,
        store: this.store,
        ingest: this.ingest,
        metrics: this.metrics,
        host: () => this.host,
        bus: this.bus,
        clock: this.clock,
        version: VERSION,
        gateway: config.gateway,
        startedAt,
      }),
    );
    http.finish();
    this.http = http.server;
    const httpPort = await listen(http.server, config.http.host, config.http.port);

    this.host = new AdapterHost({
      types: this.o.adapterTypes,
      log,
      clock: this.clock,
      bus: this.bus,
      ingest: this.ingest,
      registry: this.registry,
      store: this.store,
      topics: this.topics,
      metrics: this.metrics,
      ports: new PortRegistry(),
      router: http.adapters,
      upgrades: http.upgrades,
      dataDir,
      gateway: { id: config.gateway.id, timezone: config.gateway.timezone },
      stopTimeoutMs: config.adapterStopTimeoutMs,
      backoff: this.o.backoff,
    });
    await this.host.start(config.adapters);
    this.metrics.datapoints.set(this.registry.size);

    const hostForUrl = config.http.host === '0.0.0.0' || config.http.host === '::' ? 'localhost' : config.http.host;
    return { mqttPort, httpPort, httpUrl: `http://${hostForUrl.includes(':') ? `[${hostForUrl}]` : hostForUrl}:${httpPort}` };
  }

  /** Graceful stop: adapters, HTTP, gateway status, broker, storage flush. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.host?.stop();
    if (this.http) {
      const server = this.http;
      server.closeIdleConnections?.();
      const closed = new Promise<void>((r) => server.close(() => r()));
      setTimeout(() => server.closeAllConnections?.(), 2000).unref();
      await closed;
    }
    if (this.bus) {
      await this.bus.publish(this.topics.gatewayStatus(), JSON.stringify({ state: 'offline', since: this.clock.now() }), { retain: true }).catch(() => undefined);
      await this.bus.close();
    }
    await this.store?.close();
  }
}
