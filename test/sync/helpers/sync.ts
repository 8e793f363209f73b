import { Writable } from 'node:stream';
import { createLogger } from '../../../runtime/log.js';
import { SyncService, type SyncServiceOptions } from '../../../runtime/sync/service.js';
import type { TestGateway } from '../../helpers/gateway.js';
import type { Teardown } from '../../helpers/teardown.js';

export const GATEWAY_ID = 'gw1';

/** Sync log records, parsed (set SYNC_TEST_LOG=1 to also print them). */
export function testLogger(): { log: ReturnType<typeof createLogger>; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        records.push(JSON.parse(line));
        if (process.env.SYNC_TEST_LOG) process.stderr.write(line + '\n');
      }
      cb();
    },
  });
  return { log: createLogger({ level: 'debug', pretty: false, destination: sink }), records };
}

/** Builds and starts a SyncService against a real test gateway, the way the gateway wires it. */
export async function startSync(t: Teardown, gw: TestGateway, config: Record<string, unknown>, extra: Partial<SyncServiceOptions> = {}) {
  const { log, records } = testLogger();
  const sync = new SyncService({
    config: { enabled: true, ...config },
    store: gw.gateway.store,
    ingest: gw.gateway.ingest,
    bus: gw.gateway.bus,
    log,
    registry: gw.gateway.metrics.registry,
    datapoints: gw.gateway.registry,
    clock: gw.gateway.clock,
    gatewayId: GATEWAY_ID,
    dataDir: gw.dataDir,
    ...extra,
  });
  await sync.start();
  t.teardown(() => sync.stop());
  return { sync, logs: records };
}

/** Sensor datapoints for the config `datapoints:` section. */
export function sensors(ids: string[]): Array<Record<string, unknown>> {
  return ids.map((id) => ({ id, kind: 'sensor', type: 'number' }));
}

/** Writes `n` readings round-robin over `ids`, `t` strictly increasing per id. */
export async function writeReadings(gw: TestGateway, ids: string[], n: number, startT: number, chunk = 1000): Promise<void> {
  for (let i = 0; i < n; i += chunk) {
    const points = [];
    for (let j = i; j < Math.min(n, i + chunk); j++) points.push({ id: ids[j % ids.length]!, v: j, t: startT + j });
    await gw.gateway.ingest.acceptMany('test', points);
  }
}
