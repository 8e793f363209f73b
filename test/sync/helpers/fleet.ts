import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Gateway } from '../../../runtime/gateway.js';
import { validateConfig } from '../../../runtime/config/load.js';
import { createLogger, type Logger } from '../../../runtime/log.js';
import { adapterTypes } from '../../../adapters/index.js';
import { SyncService } from '../../../runtime/sync/service.js';

/**
 * One gateway of a fleet: a real `Gateway` (LevelDB store, registry, ingest, local bus,
 * HTTP) started in-process, and — when asked — its `SyncService` built exactly as
 * runtime/gateway.ts wires it. Sync is started separately so a backlog can be written
 * first and the drain of every gateway starts at the same moment.
 */
export interface FleetGateway {
  id: string;
  gateway: Gateway;
  dataDir: string;
  datapoints: string[];
  sync: SyncService | undefined;
  startSync(config: Record<string, unknown>): Promise<SyncService>;
  /** Writes `n` readings round-robin over the datapoints, `t` from `startT` step 1 ms per reading. */
  writeBacklog(n: number, startT: number, chunk?: number): Promise<void>;
  stop(): Promise<void>;
}

export function datapointIds(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `site.meter${String(i).padStart(2, '0')}.power`);
}

export async function startFleetGateway(id: string, options: { datapoints: number; log?: Logger; storageSync?: boolean }): Promise<FleetGateway> {
  const dataDir = await mkdtemp(join(tmpdir(), `outpost-fleet-${id}-`));
  const ids = datapointIds(options.datapoints);
  const cfg = validateConfig(
    {
      gateway: { id },
      dataDir,
      log: { level: 'warn' },
      // Only what a site needs to ingest and sync: no local MQTT listener, no dashboard.
      broker: { mqtt: { enabled: false }, websocket: { enabled: false } },
      http: { host: '127.0.0.1', port: 0 },
      dashboard: { enabled: false },
      storage: { sync: options.storageSync ?? true },
      datapoints: ids.map((dp) => ({ id: dp, kind: 'sensor', type: 'number', unit: 'W' })),
    },
    adapterTypes,
  );
  const log = options.log ?? createLogger({ level: 'warn', pretty: false });
  const gateway = new Gateway({ config: cfg, log, adapterTypes, backoff: { initialMs: 50, maxMs: 500 } });
  await gateway.start();
  let stopped = false;
  const fleetGateway: FleetGateway = {
    id,
    gateway,
    dataDir,
    datapoints: ids,
    sync: undefined,
    async startSync(config) {
      // The same wiring as runtime/gateway.ts, with this gateway's id, store and bus.
      const sync = new SyncService({
        config: { enabled: true, ...config },
        store: gateway.store,
        ingest: gateway.ingest,
        bus: gateway.bus,
        log: log.child({ component: 'sync', gateway: id }),
        registry: gateway.metrics.registry,
        datapoints: gateway.registry,
        clock: gateway.clock,
        gatewayId: id,
        dataDir,
        topicPrefix: cfg.broker.prefix,
      });
      await sync.start();
      fleetGateway.sync = sync;
      return sync;
    },
    async writeBacklog(n, startT, chunk = 1000) {
      for (let i = 0; i < n; i += chunk) {
        const points = [];
        for (let j = i; j < Math.min(n, i + chunk); j++) points.push({ id: ids[j % ids.length]!, v: j, t: startT + j });
        await gateway.ingest.acceptMany('fleet', points);
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await fleetGateway.sync?.stop();
      await gateway.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return fleetGateway;
}
