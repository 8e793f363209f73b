import { randomBytes } from 'node:crypto';
import { databaseKind, readSecretFile, type CentralConfig } from './config.js';
import { GatewayDirectory } from './gateways.js';
import { apiRoutes } from './http/api.js';
import { CentralHttp } from './http/server.js';
import { downlinkRoutes } from './ingest/downlink.js';
import { httpIngestRoutes } from './ingest/http-ingest.js';
import { loadPublicKey } from './ingest/jwt.js';
import { MqttReceiver, type MqttMessageHandler } from './ingest/mqtt.js';
import { forwardingHandler, localHandler } from './ingest/mqtt-handlers.js';
import { rockblockRoutes } from './ingest/rockblock.js';
import { IngestService } from './ingest/service.js';
import { createCentralLogger, type Logger } from './log.js';
import { CentralMetrics } from './metrics.js';
import type { CentralStore } from './store/contract.js';
import { LevelCentralStore } from './store/level.js';
import { PostgresCentralStore } from './store/postgres.js';
import { urlWithPassword } from './store/postgres/db.js';
import { openWeb, type CentralWeb } from './web/index.js';
import { openCommands, type CentralCommands } from './commands/index.js';
import openapi from './http/openapi.json' with { type: 'json' };
import './errors.js';

export interface CentralOptions {
  version: string;
  log?: Logger;
  now?: () => number;
}

export interface Central {
  /** The HTTP API and ingest (`http://host:port`). */
  url: string;
  /** The store, when this process has one (`database: level`, or `postgres://…` shared with other centrals). */
  store: CentralStore | undefined;
  receiver: MqttReceiver | undefined;
  http: CentralHttp;
  metrics: CentralMetrics;
  gateways: GatewayDirectory;
  /** The web UI (a central that owns its store): its audit trail, and the first admin when this start created it. */
  web: CentralWeb | undefined;
  /** The command router and its links (a central that owns its store). */
  commands: CentralCommands | undefined;
  stop(): Promise<void>;
}

/**
 * Starts Outpost Central from a validated config: the store (or, for a forwarding receiver,
 * none), the HTTP API and ingest, the MQTT receiver. Stops in reverse: the receiver first (a
 * message being committed finishes and is acknowledged), then HTTP, then the store.
 */
export async function startCentral(config: CentralConfig, options: CentralOptions): Promise<Central> {
  const log = options.log ?? createCentralLogger({ level: config.log.level, ...(config.log.pretty !== undefined ? { pretty: config.log.pretty } : {}) });
  const kind = databaseKind(config.database);
  const metrics = new CentralMetrics();
  const gateways = await GatewayDirectory.load(config);
  const http = new CentralHttp({ host: config.http.host, port: config.http.port, tokens: config.http.tokens, log: log.child({ component: 'http' }) });
  const now = options.now ?? Date.now;
  let store: CentralStore | undefined;
  let web: CentralWeb | undefined;
  let commands: (CentralCommands & { start(): void }) | undefined;
  let handler: MqttMessageHandler & { close?(): void };
  const cleanups: Array<() => Promise<void> | void> = [];
  try {
    if (kind === 'level' || kind === 'postgres') {
      // PostgreSQL: every central process opens the same database, each its own receiver.
      const owned =
        kind === 'level'
          ? new LevelCentralStore({ dataDir: config.dataDir, cacheDatapoints: config.level.cacheDatapoints })
          : await postgresStore(config, log, now);
      await owned.open();
      store = owned;
      cleanups.push(() => owned.close());
      const service = new IngestService({ sink: owned, gateways, metrics, log: log.child({ component: 'ingest' }), now });
      // Logins go in front of the API: before its first route (central/web/index.ts).
      const opened = await openWeb({ config, http, store: owned, gateways, log: log.child({ component: 'web' }), now });
      web = opened;
      cleanups.push(() => opened.close());
      apiRoutes({ http, store: owned, gateways, metrics, offlineAfterMs: config.fleet.offlineAfterSeconds * 1000, version: options.version, now });
      // Commands to gateways (central/commands): routes now, links once the server listens.
      const cmds = await openCommands({
        config,
        http,
        store: owned,
        gateways,
        metrics,
        audit: opened.audit,
        clientAddress: (req) => opened.security.client(req).address,
        log: log.child({ component: 'commands' }),
        now,
      });
      commands = cmds;
      cleanups.push(() => cmds.stop());
      // An alarm acknowledged on the Alarms page goes to its site as an alarm.ack command.
      opened.forwardAlarmAcks({
        forward: async (gateway, alarm, by) => {
          const queued = await cmds.enqueue(gateway, { requestId: `c-${randomBytes(12).toString('hex')}`, type: 'alarm.ack', id: alarm, by }, by);
          return `${gateway}:${queued.cursor}`;
        },
      });
      httpIngestRoutes({ http, service, gateways, metrics, ingest: config.ingest.http, maxBodyBytes: config.http.maxBodyBytes, now });
      downlinkRoutes({ http, store: owned, gateways, metrics, ingest: config.ingest.http, now });
      const rb = config.ingest.rockblock;
      if (rb) {
        const publicKey = rb.verify === 'jwt' ? await loadPublicKey(rb.jwt!.publicKeyFile) : undefined;
        if (rb.verify === 'none')
          log.warn({ component: 'ingest' }, 'ingest.rockblock.verify is none: anyone who can reach this URL can post satellite readings');
        rockblockRoutes({ http, service, sink: owned, gateways, metrics, config: rb, publicKey, now, onMtAcks: cmds.onMtAcks });
      }
      scrapedMetrics(metrics, owned, gateways);
      handler = localHandler(service, config.ingest.http.maxBatchBytes);
    } else {
      const token = config.forward!.token ?? (await readSecretFile(config.forward!.tokenFile!, 'forward.tokenFile'));
      const forwarding = forwardingHandler({ url: config.database, token });
      handler = forwarding;
      cleanups.push(() => forwarding.close());
      receiverRoutes(http, metrics, options.version, () => receiver?.connected ?? false);
    }
    let receiver: MqttReceiver | undefined;
    const url = await http.listen();
    cleanups.push(() => http.close());
    commands?.start();
    if (config.ingest.mqtt) {
      receiver = new MqttReceiver({ config: config.ingest.mqtt, handler, metrics, log: log.child({ component: 'ingest-mqtt' }) });
      await receiver.start();
      const r = receiver;
      cleanups.push(() => r.stop());
    }
    let stopped = false;
    return {
      url,
      store,
      receiver,
      http,
      metrics,
      gateways,
      web,
      commands,
      async stop() {
        if (stopped) return;
        stopped = true;
        await runCleanups(cleanups);
      },
    };
  } catch (err) {
    await runCleanups(cleanups).catch((e: Error) => log.warn({ err: e.message }, 'cleanup after a failed start'));
    throw err;
  }
}

/** The PostgreSQL store of `database: postgres://…`, with the password from `postgres.passwordFile` when given. */
async function postgresStore(config: CentralConfig, log: Logger, now: () => number): Promise<PostgresCentralStore> {
  const file = config.postgres.passwordFile;
  const url = file ? urlWithPassword(config.database, await readSecretFile(file, 'postgres.passwordFile')) : config.database;
  return new PostgresCentralStore({
    url,
    poolSize: config.postgres.poolSize,
    commitConcurrency: config.postgres.commitConcurrency,
    commitMaxRecords: config.postgres.commitMaxRecords,
    refreshMs: config.postgres.rollupRefreshSeconds * 1000,
    writeTimeoutMs: config.postgres.writeTimeoutSeconds * 1000,
    log: log.child({ component: 'store' }),
    now,
  });
}

async function runCleanups(cleanups: Array<() => Promise<void> | void>): Promise<void> {
  for (const fn of cleanups.splice(0).reverse()) await fn();
}

/** A forwarding receiver's HTTP: health (up while MQTT is connected), metrics, the API description. */
function receiverRoutes(http: CentralHttp, metrics: CentralMetrics, version: string, connected: () => boolean): void {
  http.route('get', '/healthz', 'public', (_req, res) => {
    const ok = connected();
    res.status(ok ? 200 : 503).json({ ok, version, role: 'receiver', mqtt: ok ? 'connected' : 'disconnected' });
  });
  http.route('get', '/api/openapi.json', 'public', (_req, res) => {
    res.json({ ...openapi, info: { ...openapi.info, version } });
  });
  http.route('get', '/metrics', 'api', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
}

function scrapedMetrics(metrics: CentralMetrics, store: CentralStore, gateways: GatewayDirectory): void {
  metrics.scraped('outpost_central_gateways_configured', 'Gateways listed in central.yaml', [], (g) => g.set(gateways.size));
  metrics.scraped('outpost_central_store_read_only', '1 while the store refuses writes', [], (g) => g.set(store.health().state === 'ok' ? 0 : 1));
  metrics.scraped('outpost_central_gateway_last_seen_timestamp_seconds', 'When central last heard from each configured gateway', ['gateway'], async (g) => {
    for (const s of await store.gatewayStates()) if (s.lastSeen !== undefined && gateways.get(s.id)) g.set({ gateway: s.id }, s.lastSeen / 1000);
  });
}
