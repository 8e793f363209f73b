import { isOutpostError } from '../core/errors.js';
import { loadCentralConfig } from './config.js';
import { createCentralLogger } from './log.js';
import { startCentral } from './main.js';
import { redactUrl } from './store/postgres/db.js';

const EXIT_RUNTIME = 1;
const EXIT_CONFIG = 2;

/**
 * `outpost central -c central.yaml` (`OUTPOST_CENTRAL_CONFIG` also names the file): runs
 * until SIGINT/SIGTERM, then stops gracefully (exit 0). Exit 2 on a bad config (every error by
 * path), 1 when it cannot start (a port in use, the store held by another process).
 * Returns an exit code, or undefined while it runs.
 */
export async function centralCommand(o: { configPath: string | undefined; version: string }): Promise<number | undefined> {
  const path = o.configPath ?? process.env.OUTPOST_CENTRAL_CONFIG;
  if (!path) {
    process.stderr.write('outpost central: give the config file with -c central.yaml (see central.example.yaml)\n');
    return EXIT_CONFIG;
  }
  const env = { ...process.env };
  // The file's name is not a key of the file.
  delete env.OUTPOST_CENTRAL_CONFIG;
  let config: Awaited<ReturnType<typeof loadCentralConfig>>;
  try {
    config = await loadCentralConfig(path, env);
  } catch (err) {
    if (!isOutpostError(err)) throw err;
    process.stderr.write(`${err.message}\n`);
    return EXIT_CONFIG;
  }
  const log = createCentralLogger({ level: config.log.level, ...(config.log.pretty !== undefined ? { pretty: config.log.pretty } : {}) }).child({
    central: config.id,
  });
  let central: Awaited<ReturnType<typeof startCentral>>;
  try {
    central = await startCentral(config, { version: o.version, log });
  } catch (err) {
    if (isOutpostError(err, 'CONFIG_INVALID')) {
      process.stderr.write(`${err.message}\n`);
      return EXIT_CONFIG;
    }
    log.fatal({ err: isOutpostError(err) ? err.message : err }, 'start failed');
    log.flush?.();
    return EXIT_RUNTIME;
  }
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    central.stop().then(
      () => {
        log.info('stopped');
        log.flush?.();
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(EXIT_RUNTIME);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  // A PostgreSQL URL may carry the password: shown without it.
  const where = central.store?.kind === 'postgres' ? `at ${redactUrl(config.database)}` : `in ${config.dataDir}`;
  const role = central.store ? `store ${central.store.kind} ${where}` : `receiver forwarding to ${config.database}`;
  log.info({ http: central.url, role, gateways: central.gateways.size, mqtt: config.ingest.mqtt?.url }, 'outpost central ready');
  process.stdout.write(
    `Outpost Central ${o.version} ready: ${central.url}  (${role}, ${central.gateways.size} gateway(s)${config.ingest.mqtt ? `, MQTT ${config.ingest.mqtt.url}` : ''})\n`,
  );
  // As the gateway: a generated first password goes to the terminal once, never to the log.
  const first = central.web?.firstAdmin;
  if (first?.generatedPassword)
    process.stdout.write(`First start: web UI login "${first.username}", password ${first.generatedPassword} (shown once; change it under Users)\n`);
  return undefined;
}
