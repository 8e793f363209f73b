import { mkdir } from 'node:fs/promises';
import { dirname, resolve, join } from 'node:path';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Config } from './config/schema.js';
import { assertConfigChecks } from './config/check.js';
import type { Logger } from './log.js';
import { systemClock, type Clock } from '../core/clock.js';
import { Bus } from './bus.js';
import { Topics } from './topics.js';
import { Metrics } from './metrics.js';
import { DatapointRegistry } from './datapoints/registry.js';
import { Ingest } from './ingest.js';
import { AdapterHost } from './adapter-host.js';
import { PortRegistry } from './ports.js';
import { createHttp, listen } from './http/server.js';
import type { AdapterType } from './adapter.js';
import { LevelStore } from '../storage/level/level-store.js';
import { createBrokerPersistence } from '../storage/broker-persistence.js';
import { type Retention, RetentionPolicy } from '../storage/retention.js';
import { startRetention } from './retention-runner.js';
import { MemoryStore } from '../storage/memory-store.js';
import { supports, type Store } from '../storage/store.js';
import { VERSION } from './version.js';
import { SyncService } from './sync/service.js';
import { SatelliteDirectory } from './sync/satellite.js';
import { RemoteConfigReceiver } from './sync/remote-config.js';
import { ServiceRegistry } from './services.js';
import { tariffService, type TariffService } from './site/services.js';
import { Security } from './auth/middleware.js';
import { NodeRedService } from '../flows/node-red.js';
import { ADMIN_ROOT as FLOWS_EDITOR_PATH } from '../flows/node-red-settings.js';
import { AuditLog } from './audit/audit-log.js';
import { AlarmsFeature } from './alarms/index.js';
import { DatapointDeleter } from './datapoints/deletion.js';
import { flowChangeEntry } from './audit/record.js';
import { LocalAccessToken } from './auth/local-access.js';
import { ProxyTrust } from './http/forwarded.js';
import { openStore } from './storage-wait.js';
import { SpaceReserve } from '../storage/level/space-reserve.js';
import { removePidFile, runningGateway, writePidFile } from '../storage/data-dir-lock.js';
import type { LevelBrokerPersistence } from '../storage/broker-persistence.js';

export interface GatewayOptions {
  config: Config;
  log: Logger;
  adapterTypes: ReadonlyMap<string, AdapterType>;
  clock?: Clock;
  /** Restart backoff of failed adapters (tests shorten it). */
  backoff?: { initialMs: number; maxMs: number };
  /** The file the config came from: named in CONFIG_INVALID, its folder given to adapter checks. */
  configFile?: string;
  /**
   * Asked for by an admin (POST /api/system/restart): the CLI stops this gateway and exits with
   * EXIT_RESTART for the service manager to start it again. Absent (embedded, tests): refused.
   */
  restart?: () => void;
}

export interface GatewayAddresses {
  mqttPort?: number;
  httpPort: number;
  httpUrl: string;
}

/** Composition root: storage → registry → bus → HTTP → adapters; stopped in reverse. */
export class Gateway {
  readonly metrics = new Metrics();
  /** Services adapters provide to this gateway (a satellite modem for sync): this instance's, never process-wide. */
  readonly services = new ServiceRegistry();
  /** The site's tariff (`site.tariff`), also provided to adapters as the service ('tariff', 'site'). */
  private tariff!: TariffService;
  readonly clock: Clock;
  readonly topics: Topics;
  store!: Store;
  registry!: DatapointRegistry;
  bus!: Bus;
  ingest!: Ingest;
  host: AdapterHost | undefined;
  sync: SyncService | undefined;
  nodeRed: NodeRedService | undefined;
  /** Set on the start that created the first admin: the CLI prints a generated password once. */
  firstAdmin: Awaited<ReturnType<Security['init']>> | undefined;
  private http: Server | undefined;
  /**
   * Upgraded connections (the dashboard's live MQTT websocket, Node-RED's editor): Node no
   * longer counts them as HTTP connections, so `server.close()` would wait for them for ever
   * (a stop or restart with a dashboard open never ended); `stop()` ends them itself.
   */
  private readonly upgraded = new Set<Duplex>();
  private localAccess: LocalAccessToken | undefined;
  /** Retention and the disk budget (LevelDB only); `run()` does a pass on demand. */
  retention: Retention | undefined;
  private stopped = false;
  /** Aborts a start that waits for room to open storage (a stop meanwhile). */
  private readonly stopping = new AbortController();
  private persistence: LevelBrokerPersistence | undefined;
  private dataDir: string | undefined;
  /** Who did what (setpoints, charger commands, users, flows, backups): `<dataDir>/audit`. */
  audit: AuditLog | undefined;
  /** Alarm rules, alarms from flows and the event log (runtime/alarms); also the ('events', 'gateway') service. */
  alarms: AlarmsFeature | undefined;
  /** `DELETE /api/datapoints/<id>`: a datapoint with its data (runtime/datapoints/deletion.ts). */
  deleter: DatapointDeleter | undefined;

  constructor(private readonly o: GatewayOptions) {
    this.clock = o.clock ?? systemClock;
    this.topics = new Topics(o.config.broker.prefix);
  }

  async start(): Promise<GatewayAddresses> {
    const { config, log } = this.o;
    // What `outpost check` checks, before anything starts: a config it refuses never half-runs.
    const configWarnings: Array<{ path: string; message: string }> = [];
    await assertConfigChecks(config, this.o.adapterTypes, {
      source: this.o.configFile ?? 'configuration',
      warnings: configWarnings,
      ...(this.o.configFile ? { configDir: dirname(resolve(this.o.configFile)) } : {}),
    });
    for (const w of configWarnings) log.warn({ component: 'config', path: w.path }, w.message);
    const dataDir = resolve(config.dataDir);
    await mkdir(dataDir, { recursive: true });
    this.dataDir = dataDir;
    // Offline tools (repair, backup, restore) refuse a data dir whose pid file names a live
    // process. Not over the file of another live process: a second gateway on this data dir
    // fails at the LOCK below and must not take the first one's file with it when it stops.
    const pidBefore = await runningGateway(dataDir);
    if (pidBefore === undefined) await this.recordPid(dataDir);
    this.audit = new AuditLog({ dir: join(dataDir, 'audit'), log: log.child({ component: 'audit' }), clock: this.clock });
    await this.audit.open();
    const startedAt = this.clock.now();
    this.tariff = tariffService(config.site.tariff, config.gateway.timezone);
    this.services.register('tariff', 'site', this.tariff);

    this.store =
      config.storage.engine === 'memory'
        ? new MemoryStore()
        : new LevelStore({
            path: join(dataDir, 'db'),
            sync: config.storage.sync,
            maxBatch: config.storage.maxBatch,
            maxPending: config.storage.maxPending,
            onAlarm: (error) => this.storageAlarm(error),
            reserve: new SpaceReserve(join(dataDir, 'space-reserve'), config.storage.reserveBytes),
          });
    // A full disk is a state, not a reason to exit: open read-only with the space reserve, or
    // (none to give up) wait for room, answering 503 meanwhile.
    const opened = await openStore({
      store: this.store,
      path: supports(this.store, 'location') ? this.store.path : undefined,
      log,
      http: config.http,
      gateway: config.gateway.id,
      version: VERSION,
      signal: this.stopping.signal,
    });
    // The LOCK is ours now: the live process the pid file named is no gateway here (a pid reused after a reboot).
    if (pidBefore !== undefined) await this.recordPid(dataDir);

    this.registry = new DatapointRegistry(this.store, log.child({ component: 'datapoints' }));
    await this.registry.load();
    for (const dp of config.datapoints) await this.registry.register({ ...dp, adapter: 'virtual' });

    // Broker state (persistent sessions, offline QoS 1 queues, wills, retained) lives in the same LevelDB.
    const valueTopic = new RegExp(`^${config.broker.prefix}/dp/[^/]+/value$`);
    // The storage alarm is published again at every start from the store's state: a copy on disk would be stale.
    const storageTopic = this.topics.gatewayStorage();
    const store = this.store;
    const persistence = (this.persistence = supports(store, 'brokerState')
      ? createBrokerPersistence({
          db: store.brokerDatabase(),
          volatileRetained: (topic) => valueTopic.test(topic) || topic === storageTopic,
          // Broker state shares the database: while storage is read-only its changes wait in memory.
          writable: () => !store.readOnly,
          onWriteError: (err) => {
            if (!err) return;
            log.warn({ component: 'broker', reason: err.message }, 'broker state not written: kept in memory until storage recovers');
            store.writeFailed((err.cause as Error | undefined)?.message ?? err.message);
          },
        })
      : undefined);
    this.bus = await Bus.create({
      log: log.child({ component: 'broker' }),
      anonymous: config.broker.anonymous,
      users: config.broker.users,
      persistence,
      limits: config.broker.limits,
    });
    this.ingest = new Ingest({
      store: this.store,
      registry: this.registry,
      bus: this.bus,
      topics: this.topics,
      metrics: this.metrics,
      log: log.child({ component: 'ingest' }),
      clock: this.clock,
      unknownDatapoints: config.broker.unknownDatapoints,
      maxAutoDatapoints: config.broker.maxAutoDatapoints,
      audit: this.audit,
    });
    this.bus.guard = this.ingest.guard;
    this.registry.onChange((dp) => void this.bus.publish(this.topics.meta(dp.id), JSON.stringify(dp), { retain: true }));

    // Retained state a subscriber expects right after a restart: metadata and latest values.
    for (const dp of this.registry.list()) {
      await this.bus.publish(this.topics.meta(dp.id), JSON.stringify(dp), { retain: true });
      const latest = this.store.latest(dp.id);
      if (latest) await this.bus.publish(this.topics.value(dp.id), JSON.stringify(latest), { retain: true });
    }
    // Alarms and the event log: rules see readings from here on (not the stored ones just
    // published again), the event log sees the storage state below and every adapter status.
    this.alarms = new AlarmsFeature({
      config: config.alarms,
      dataDir,
      clock: this.clock,
      log: log.child({ component: 'alarms' }),
      bus: this.bus,
      topics: this.topics,
      registry: this.registry,
      ingest: this.ingest,
      store: this.store,
      version: VERSION,
    });
    await this.alarms.start();
    this.services.register('events', 'gateway', this.alarms.events);
    await this.bus.publish(this.topics.gatewayStatus(), JSON.stringify({ state: 'online', since: startedAt, version: VERSION }), { retain: true });
    await this.bus.publish(storageTopic, JSON.stringify(this.storageState(this.store.stats().error)), { retain: true });
    this.metrics.storageReadOnly.set(this.store.readOnly ? 1 : 0);

    let mqttPort: number | undefined;
    if (config.broker.mqtt.enabled) mqttPort = await this.bus.listen(config.broker.mqtt.host, config.broker.mqtt.port);
    const mqtts = config.broker.mqtts;
    if (mqtts.enabled) await this.bus.listenTls(mqtts.host, mqtts.port, { certFile: mqtts.certFile!, keyFile: mqtts.keyFile!, caFile: mqtts.caFile });
    this.localAccess = new LocalAccessToken(dataDir);
    const security = new Security({
      config: config.auth,
      dataDir,
      configTokens: config.http.tokens,
      proxies: new ProxyTrust(config.http.trustedProxies),
      localAccess: this.localAccess,
      audit: this.audit,
      log: log.child({ component: 'auth' }),
      brokerPrefix: config.broker.prefix,
    });
    this.firstAdmin = await security.init();

    const http = createHttp({
      log: log.child({ component: 'http' }),
      tokens: config.http.tokens,
      maxBodyBytes: config.http.maxBodyBytes,
      bus: this.bus,
      websocketPath: config.broker.websocket.enabled ? config.broker.websocket.path : undefined,
      security,
      tls: config.http.tls,
      dashboard: config.dashboard.enabled,
    });
    const clientAddress = (req: IncomingMessage): string => security.client(req).address;
    const configured = new Set(config.datapoints.map((dp) => dp.id));
    this.deleter = new DatapointDeleter({
      registry: this.registry,
      store: this.store,
      bus: this.bus,
      topics: this.topics,
      ingest: this.ingest,
      configured: (id) => configured.has(id),
      adapterState: (adapter) => this.host?.statuses().find((s) => s.id === adapter)?.state,
      audit: this.audit,
      log: log.child({ component: 'datapoints' }),
      onDeleted: () => this.metrics.datapoints.set(this.registry.size),
    });
    // Every feature route, one plugin per feature: runtime/http/routes.ts.
    http.routes({
      clientAddress,
      site: { config: config.site, timezone: config.gateway.timezone, tariff: this.tariff },
      deleter: this.deleter,
      audit: this.audit,
      system: {
        dataDir,
        ...(supports(this.store, 'location') ? { storePath: this.store.path } : {}),
        ...(config.storage.retention.maxBytes !== undefined ? { budgetBytes: config.storage.retention.maxBytes } : {}),
        gateway: config.gateway,
        version: VERSION,
        startedAt,
        clock: this.clock,
        flows: { enabled: config.flows.enabled, editorPath: FLOWS_EDITOR_PATH },
        ...(this.o.restart ? { restart: this.o.restart } : {}),
        log: log.child({ component: 'system' }),
      },
      alarms: { engine: this.alarms.engine, events: this.alarms.events },
      backup: {
        store: this.store,
        registry: this.registry,
        dataDir,
        gatewayId: config.gateway.id,
        log: log.child({ component: 'backup' }),
        audit: this.audit,
        clientAddress,
      },
      api: {
        registry: this.registry,
        store: this.store,
        ingest: this.ingest,
        metrics: this.metrics,
        host: () => this.host,
        sync: () => this.sync,
        bus: this.bus,
        clock: this.clock,
        version: VERSION,
        gateway: config.gateway,
        startedAt,
        clientAddress,
        adapterTypes: this.o.adapterTypes,
      },
    });
    if (config.flows.enabled) {
      this.nodeRed = new NodeRedService({
        app: http.api,
        server: http.server,
        upgrades: http.upgrades,
        bus: this.bus,
        ingest: this.ingest,
        registry: this.registry,
        store: this.store,
        topics: this.topics,
        hostStatuses: () => this.host?.statuses() ?? [],
        alarms: this.alarms.flows,
        log: log.child({ component: 'flows' }),
        clock: this.clock,
        config: config.flows,
        dataDir,
        authorize: async (req) => {
          const p = security.principalOf(req);
          return p ? { username: p.name, role: p.role } : null;
        },
        // Websockets: same login, plus the Origin (browsers do not apply the same-origin policy to them).
        authorizeUpgrade: (req) => {
          const p = security.upgradePrincipal(req);
          return p ? { username: p.name, role: p.role } : null;
        },
        // Every change request of an admin (deploys first of all): a log line and an audit entry.
        onDeploy: (event) => {
          log.info({ component: 'flows', ...event }, 'flows changed by an admin');
          this.audit?.record(flowChangeEntry(event));
        },
      });
    }
    http.finish();
    this.http = http.server;
    http.server.on('upgrade', (_req: IncomingMessage, socket: Duplex) => {
      this.upgraded.add(socket);
      socket.once('close', () => this.upgraded.delete(socket));
    });
    // The port that answered 503 while storage could not open, when the config lets the system choose.
    const httpPort = await listen(http.server, config.http.host, config.http.port === 0 && opened.httpPort ? opened.httpPort : config.http.port);

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
      audit: this.audit,
      clientAddress,
      // What the retention pass below applies: adapters warn at import about readings it will delete.
      retention: supports(this.store, 'retention') ? new RetentionPolicy(config.storage.retention) : undefined,
      services: this.services,
    });
    await this.host.start(config.adapters);
    this.metrics.datapoints.set(this.registry.size);

    this.sync = new SyncService({
      config: config.sync,
      store: this.store,
      ingest: this.ingest,
      bus: this.bus,
      log: log.child({ component: 'sync' }),
      registry: this.metrics.registry,
      datapoints: this.registry,
      clock: this.clock,
      gatewayId: config.gateway.id,
      dataDir,
      topicPrefix: config.broker.prefix,
      satellites: new SatelliteDirectory({ gatewayId: config.gateway.id, services: this.services }),
      alarms: { engine: this.alarms.engine, audit: this.audit },
      // The `config` command: checked and stored here, applied by `outpost start` (runtime/config/pending.ts).
      remoteConfig: new RemoteConfigReceiver({
        configFile: this.o.configFile,
        config,
        adapterTypes: this.o.adapterTypes,
        restart: this.o.restart,
        audit: this.audit,
        events: this.alarms.events,
        registry: this.registry,
        ingest: this.ingest,
        store: this.store,
        clock: this.clock,
        log: log.child({ component: 'config' }),
      }),
    });
    await this.sync.start();
    if (this.store.readOnly)
      this.sync.reportStorage({ state: 'read-only', error: this.store.stats().error ?? 'storage is read-only', since: this.clock.now() });
    await this.nodeRed?.start();

    if (supports(this.store, 'retention'))
      this.retention = startRetention(this.store, config.storage.retention, this.metrics, log.child({ component: 'retention' }));

    const hostForUrl = config.http.host === '0.0.0.0' || config.http.host === '::' ? 'localhost' : config.http.host;
    const httpUrl = `${config.http.tls ? 'https' : 'http'}://${hostForUrl.includes(':') ? `[${hostForUrl}]` : hostForUrl}:${httpPort}`;
    // `outpost api` on this host finds the gateway and its admin token here.
    await this.localAccess.publish(localUrl(config.http.host, httpPort, config.http.tls !== undefined), config.http.tls?.certFile);
    return { mqttPort, httpPort, httpUrl };
  }

  private async recordPid(dataDir: string): Promise<void> {
    const pid = await writePidFile(dataDir);
    if (!pid.ok)
      this.o.log.warn({ component: 'storage', reason: pid.reason }, 'pid file not written: offline tools recognise this gateway by the database LOCK only');
  }

  /** Storage went read-only (disk full, I/O error) or recovered: say so where operators look. */
  private storageAlarm(error: string | undefined): void {
    this.metrics.storageReadOnly.set(error ? 1 : 0);
    if (error) this.o.log.error({ component: 'storage', error }, 'storage is read-only: readings are refused (no PUBACK) until it recovers');
    else this.o.log.warn({ component: 'storage' }, 'storage writable again (database reopened)');
    // Broker state changes held back while read-only go to disk now.
    if (!error) this.persistence?.resumeWrites();
    // Upstream too, on the links' status channel: the outbox is in the storage that refuses writes.
    this.sync?.reportStorage(error ? { state: 'read-only', error, since: this.clock.now() } : { state: 'ok', since: this.clock.now() });
    this.bus
      ?.publish(this.topics.gatewayStorage(), JSON.stringify(this.storageState(error)), { retain: true })
      .catch((err: unknown) => this.o.log.debug({ err }, 'storage state not published (broker closing)'));
  }

  private storageState(error: string | undefined): object {
    return error ? { state: 'read-only', error, since: this.clock.now() } : { state: 'ok', since: this.clock.now() };
  }

  /** Graceful stop: adapters, HTTP, gateway status, broker, storage flush. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // A start still waiting for room to open storage gives up.
    this.stopping.abort();
    // Flows first: they write through the bus and adapters.
    await this.nodeRed?.stop();
    await this.host?.stop();
    // Sync stops while the store is still open, so its cursor and releases are written.
    await this.sync?.stop();
    await this.retention?.stop();
    // Alarm states still to be stored go through the bus and storage: both still open here.
    await this.alarms?.stop();
    await this.localAccess?.withdraw().catch((err: unknown) => this.o.log.warn({ err }, 'local access file not removed'));
    if (this.http) {
      const server = this.http;
      server.closeIdleConnections?.();
      for (const socket of this.upgraded) socket.end();
      const closed = new Promise<void>((r) => server.close(() => r()));
      setTimeout(() => {
        server.closeAllConnections?.();
        for (const socket of this.upgraded) socket.destroy();
      }, 2000).unref();
      await closed;
    }
    if (this.bus) {
      await this.bus
        .publish(this.topics.gatewayStatus(), JSON.stringify({ state: 'offline', since: this.clock.now() }), { retain: true })
        .catch(() => undefined);
      await this.bus.close();
    }
    // QoS 0 readings the broker took are written before storage closes.
    await this.ingest?.flush();
    await this.store?.close();
    // Last: everything above may still record (an adapter's command answered while stopping).
    await this.audit?.close();
    // The data dir is free for the offline tools now.
    if (this.dataDir) await removePidFile(this.dataDir).catch((err: unknown) => this.o.log.warn({ err }, 'pid file not removed'));
  }
}

/** Where `outpost api` on this host reaches the API: a wildcard listener is reached on loopback. */
function localUrl(host: string, port: number, tls: boolean): string {
  const local = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `${tls ? 'https' : 'http'}://${local.includes(':') ? `[${local}]` : local}:${port}`;
}
