/**
 * Child process of bench/node-red.bench.ts: a real Outpost gateway (simulated site, LevelDB)
 * with Node-RED embedded and the shipped demo flows, or without Node-RED (`--no-flows`).
 * Prints "READY <http port>" once everything runs, and stops on SIGTERM.
 */
import express from 'express';
import { createServer } from 'node:http';
import { Gateway } from '../runtime/gateway.js';
import { validateConfig } from '../runtime/config/load.js';
import { createLogger } from '../runtime/log.js';
import { listen } from '../runtime/http/server.js';
import { adapterTypes } from '../adapters/index.js';
import { NodeRedService, DEFAULT_FLOWS_FILE } from '../flows/node-red.js';
import { FlowsConfigSchema } from '../flows/config.js';

const dataDir = process.argv[2];
const withFlows = !process.argv.includes('--no-flows');
if (!dataDir) throw new Error('usage: node-red-launcher <dataDir> [--no-flows]');

const log = createLogger({ level: 'warn', pretty: false });
const config = validateConfig(
  {
    dataDir,
    log: { level: 'warn' },
    broker: { mqtt: { host: '127.0.0.1', port: 0 } },
    http: { host: '127.0.0.1', port: 0 },
    adapters: [{ id: 'site', type: 'simulated', interval: 1000, prefix: 'site' }],
  },
  adapterTypes,
);
const gateway = new Gateway({ config, log, adapterTypes });
const addresses = await gateway.start();

let service: NodeRedService | undefined;
let port = addresses.httpPort;
if (withFlows) {
  // Until the lead wires the service into runtime/gateway.ts, it gets its own app and server.
  const app = express();
  app.use(express.json({ limit: 1024 * 1024 }));
  const server = createServer(app);
  port = await listen(server, '127.0.0.1', 0);
  service = new NodeRedService({
    app,
    server,
    bus: gateway.bus,
    ingest: gateway.ingest,
    registry: gateway.registry,
    store: gateway.store,
    topics: gateway.topics,
    hostStatuses: () => gateway.host?.statuses() ?? [],
    log,
    config: FlowsConfigSchema.parse({ enabled: true, credentialSecret: 'bench-credential-secret-0123456789', flowFile: DEFAULT_FLOWS_FILE, logLevel: 'warn' }),
    dataDir,
    authorize: async () => ({ username: 'bench', role: 'admin' }),
  });
  await service.start();
}
process.stdout.write(`READY ${port}\n`);

process.on('SIGTERM', () => {
  void (async () => {
    await service?.stop();
    await gateway.stop();
    process.exit(0);
  })();
});
