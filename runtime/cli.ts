#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { createInterface } from 'node:readline/promises';

import { adapterTypes } from '../adapters/index.js';
import { formatIssues, loadConfigFile, validateConfig, type ConfigIssue } from './config/load.js';
import { assertConfigChecks } from './config/check.js';
import { DemoDevices } from './demo.js';
import type { Config } from './config/schema.js';
import { isOutpostError } from '../core/errors.js';
import { createLogger, type Logger } from './log.js';
import { Gateway } from './gateway.js';
import { hashPassword, hashToken } from './auth/passwords.js';
import { VERSION } from './version.js';
import { repairLevelDb } from '../storage/level/level-store.js';
import { assertNotInUse } from '../storage/data-dir-lock.js';
import { userCommand } from './auth/user-cli.js';
import { apiCommand } from './auth/api-cli.js';
import { backupCommand, restoreCommand } from '../storage/backup-cli.js';
import { cliActor, recordOffline } from './audit/offline.js';
import { EXIT_RESTART } from './system-info.js';
import { ConfigStartup } from './config/pending.js';
import { reportConfigAtStart } from './sync/remote-config.js';
import { dirname, join, resolve } from 'node:path';

const HELP = `outpost ${VERSION} — edge gateway runtime

Usage:
  outpost demo [--data-dir DIR]       run the built-in demo site (default when no command is given)
  outpost start -c outpost.yaml       run a site from its config file
  outpost check -c outpost.yaml       validate a config file; lists every error by path
  outpost repair -c outpost.yaml | --db DIR   repair a damaged LevelDB (stop the gateway first)
  outpost backup -c outpost.yaml --out FILE [--from ISO|ms] [--to ISO|ms]
                                      write datapoints and points as NDJSON (gzip if FILE ends in .gz;
                                      stop the gateway first, or GET /api/admin/backup while it runs)
  outpost restore -c outpost.yaml FILE   verify a backup file, then restore it (idempotent; stop the gateway first)
  outpost user add NAME [--role admin|operator|viewer]   add a dashboard user (password on stdin)
  outpost user passwd NAME | outpost user list
  outpost api METHOD PATH [JSON|-] [-c outpost.yaml | --data-dir DIR]
                                      call the running gateway's API as the local admin (token from
                                      <dataDir>/auth/local-access.json; '-' reads the body from stdin)
  outpost hash-password               read a password on stdin, print its hash for broker.users
  outpost hash-token                  read an API token on stdin, print its hash for http.tokens
  outpost central -c central.yaml     run Outpost Central, the receiving side of a fleet (central/README.md)
  outpost --version | --help

Environment: OUTPOST_CONFIG names the config file; OUTPOST_<SECTION>_<KEY> overrides
any key (e.g. OUTPOST_HTTP_PORT=8081, OUTPOST_LOG_LEVEL=debug).

Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error, 75 restart asked for
(POST /api/system/restart: stopped cleanly for the service manager to start it again).
`;

const EXIT_RUNTIME = 1;
const EXIT_CONFIG = 2;

async function readSecret(prompt: string): Promise<string> {
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks)
      .toString('utf8')
      .replace(/\r?\n$/, '');
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  const answer = await rl.question(prompt);
  rl.close();
  return answer;
}

interface RunHooks {
  /** After the gateway is ready (the demo connects its simulated chargers here). */
  afterStart?(httpUrl: string, log: Logger): Promise<void>;
  /** After the gateway stopped. */
  afterStop?(): Promise<void>;
}

async function run(config: Config, hooks: RunHooks = {}, configFile?: string, startup?: ConfigStartup): Promise<void> {
  // A fault that lasts (a full disk) is logged once a minute per kind, not at every attempt.
  const log = createLogger({ level: config.log.level, pretty: config.log.pretty, repeatWindowMs: 60_000 });
  for (const note of startup?.notes ?? []) log[note.level]({ component: 'config', ...note.fields }, note.msg);
  // An admin's restart (System page): the same clean stop as SIGTERM, then EXIT_RESTART, on which
  // systemd's Restart=on-failure (README, Operations) starts the gateway again.
  const restart = (): void => {
    process.stdout.write(`Outpost stopping for a restart (exit code ${EXIT_RESTART}: the service manager starts it again)\n`);
    shutdown('restart', EXIT_RESTART);
  };
  const gateway = new Gateway({ config, log, adapterTypes, ...(configFile ? { configFile } : {}), restart });
  let stopping = false;
  const shutdown = (signal: string, code = 0): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    gateway
      .stop()
      .then(() => hooks.afterStop?.())
      .then(
        () => {
          log.info({ exitCode: code }, 'stopped');
          log.flush?.();
          process.exit(code);
        },
        (err: unknown) => {
          log.error({ err }, 'shutdown failed');
          process.exit(EXIT_RUNTIME);
        },
      );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  try {
    const { httpUrl, mqttPort } = await gateway.start();
    if (gateway.firstAdmin?.generatedPassword) {
      process.stdout.write(
        `First start: dashboard login "${gateway.firstAdmin.username}", password ${gateway.firstAdmin.generatedPassword} (shown once; change it under Users)\n`,
      );
    }
    await hooks.afterStart?.(httpUrl, log);
    // A pushed config that got this far is applied; the outcome goes upstream (gateway.config.*).
    if (startup) {
      const { registry, ingest, store, clock } = gateway;
      await reportConfigAtStart(startup, { registry, ingest, store, clock, config, events: gateway.alarms?.events }, log.child({ component: 'config' }));
    }
    log.info({ http: httpUrl, mqtt: mqttPort, dataDir: config.dataDir }, 'outpost ready');
    // One plain line for people and scripts: where to look.
    process.stdout.write(`Outpost ${VERSION} ready: ${httpUrl}  (MQTT on ${config.broker.mqtt.host}:${mqttPort ?? 'off'}, data in ${config.dataDir})\n`);
  } catch (err) {
    // Stopped while the start waited (for room to open storage): shutdown() exits 0.
    if (stopping) return;
    // On a pushed config under trial: the next start restores the previous one and reports this.
    await startup?.failed(err);
    // Refused before anything started (the checks of `outpost check`): the same message and exit code.
    if (isOutpostError(err, 'CONFIG_INVALID') && !gateway.store) {
      process.stderr.write(`${err.message}\n`);
      await gateway.stop().catch(() => undefined);
      process.exitCode = EXIT_CONFIG;
      setTimeout(() => process.exit(EXIT_CONFIG), 100).unref();
      return;
    }
    log.fatal({ err: isOutpostError(err) ? err.message : err }, 'start failed');
    await gateway.stop().catch(() => undefined);
    log.flush?.();
    process.exitCode = EXIT_RUNTIME;
    setTimeout(() => process.exit(EXIT_RUNTIME), 100).unref();
  }
}

async function main(argv: string[]): Promise<number | undefined> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      'data-dir': { type: 'string' },
      db: { type: 'string' },
      out: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      role: { type: 'string' },
      version: { type: 'boolean', short: 'v' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.version) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const command = positionals[0] ?? 'demo';
  if (values.help || command === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  const configPath = values.config ?? process.env.OUTPOST_CONFIG;
  switch (command) {
    case 'demo': {
      const devices = new DemoDevices(createLogger({ level: 'info' }).child({ component: 'demo' }));
      const config = validateConfig(await devices.config(values['data-dir'] ?? './data'), adapterTypes, { env: process.env, source: 'demo configuration' });
      await run(config, { afterStart: (url) => devices.connectChargers(url), afterStop: () => devices.stop() });
      return undefined;
    }
    case 'start':
    case 'check': {
      if (!configPath) {
        process.stderr.write(`outpost ${command}: give the config file with -c outpost.yaml (or OUTPOST_CONFIG)\n`);
        return EXIT_CONFIG;
      }
      // A pushed config (sync.remoteConfig) is applied, refused or rolled back before the file is read.
      const startup =
        command === 'start'
          ? await ConfigStartup.prepare({ configPath, adapterTypes, env: process.env, ...(values['data-dir'] ? { dataDirOverride: values['data-dir'] } : {}) })
          : undefined;
      const config = await loadConfigFile(configPath, adapterTypes);
      if (values['data-dir']) config.dataDir = values['data-dir'];
      if (command === 'check') {
        // The same checks start runs before it starts anything (Gateway.start).
        const warnings: ConfigIssue[] = [];
        await assertConfigChecks(config, adapterTypes, { source: configPath, configDir: dirname(resolve(configPath)), warnings });
        // Doubtful but possibly right (an alarm rule's glob matching no datapoint of the file): said, not refused.
        if (warnings.length > 0) process.stderr.write(`${configPath}: warnings:\n${formatIssues(warnings)}\n`);
        process.stdout.write(`${configPath}: ok (${config.adapters.length} adapter(s), gateway "${config.gateway.id}")\n`);
        return 0;
      }
      await run(config, {}, configPath, startup);
      return undefined;
    }
    case 'repair': {
      const dataDir = values['data-dir'] ?? (configPath ? (await loadConfigFile(configPath, adapterTypes)).dataDir : undefined);
      if (!dataDir && !values.db) {
        process.stderr.write('outpost repair: give the config file with -c outpost.yaml, --data-dir DIR, or the database folder with --db DIR\n');
        return EXIT_CONFIG;
      }
      // --db names the LevelDB folder itself: what the corruption message on open prints.
      const db = values.db ? resolve(values.db) : join(resolve(dataDir!), 'db');
      try {
        // LevelDB's repair takes no lock: run against a live gateway's database it broke it.
        await assertNotInUse(db, 'outpost repair');
      } catch (err) {
        if (!isOutpostError(err, 'STORAGE_IN_USE')) throw err;
        process.stderr.write(`outpost repair: ${err.message}\n`);
        return EXIT_RUNTIME;
      }
      process.stdout.write(`repairing ${db} …\n`);
      await repairLevelDb(db);
      process.stdout.write('done: start the gateway again and check its log for lost records\n');
      return 0;
    }
    case 'backup':
    case 'restore': {
      const config = configPath ? await loadConfigFile(configPath, adapterTypes) : undefined;
      const dataDir = values['data-dir'] ?? config?.dataDir;
      const file = command === 'backup' ? values.out : positionals[1];
      if (!dataDir || !file) {
        process.stderr.write(
          command === 'backup'
            ? 'outpost backup: give -c outpost.yaml (or --data-dir DIR) and --out FILE\n'
            : 'outpost restore: give -c outpost.yaml (or --data-dir DIR) and the backup FILE\n',
        );
        return EXIT_CONFIG;
      }
      try {
        const line =
          command === 'backup'
            ? await backupCommand({ dataDir, gateway: config?.gateway.id ?? 'unknown', out: file, from: values.from, to: values.to })
            : await restoreCommand({ dataDir, file, sync: config?.storage.sync });
        process.stdout.write(`${line}\n`);
        if (command === 'restore')
          await recordOffline(dataDir, {
            action: 'backup.restore',
            actor: cliActor(),
            target: config?.gateway.id,
            details: { file: resolve(file), result: line },
            outcome: 'ok',
          });
        return 0;
      } catch (err) {
        if (!isOutpostError(err)) throw err;
        process.stderr.write(`outpost ${command}: ${err.message}\n`);
        // A database in use means a running gateway, which owns the audit files: nothing was restored.
        if (command === 'restore' && err.code !== 'STORAGE_OPEN_FAILED' && err.code !== 'STORAGE_IN_USE') {
          await recordOffline(dataDir, {
            action: 'backup.restore',
            actor: cliActor(),
            target: config?.gateway.id,
            details: { file: resolve(file) },
            outcome: 'refused',
            error: { code: err.code, message: err.message },
          });
        }
        return err.code === 'BAD_REQUEST' ? EXIT_CONFIG : EXIT_RUNTIME;
      }
    }
    case 'user': {
      const [action = '', username] = positionals.slice(1);
      const dataDir = values['data-dir'] ?? (configPath ? (await loadConfigFile(configPath, adapterTypes)).dataDir : './data');
      const password = action === 'add' || action === 'passwd' ? await readSecret('Password: ') : undefined;
      try {
        process.stdout.write(`${await userCommand(dataDir, { action, username, role: values.role, password })}\n`);
        return 0;
      } catch (err) {
        if (!isOutpostError(err)) throw err;
        process.stderr.write(`${err.message}\n`);
        return EXIT_CONFIG;
      }
    }
    case 'api': {
      const [method, path, bodyArg] = positionals.slice(1);
      if (!method || !path) {
        process.stderr.write('outpost api: give a method and a path, e.g. outpost api GET /api/datapoints\n');
        return EXIT_CONFIG;
      }
      // Without -c, the demo's data dir: `npm start` then `npx outpost api GET /api/datapoints`.
      const dataDir = values['data-dir'] ?? (configPath ? (await loadConfigFile(configPath, adapterTypes)).dataDir : './data');
      const body = bodyArg === '-' ? await readSecret('') : bodyArg;
      try {
        const res = await apiCommand({ dataDir, method, path, body });
        const ok = res.status >= 200 && res.status < 300;
        (ok ? process.stdout : process.stderr).write(res.body.endsWith('\n') || res.body === '' ? res.body : `${res.body}\n`);
        if (!ok) process.stderr.write(`outpost api: HTTP ${res.status}\n`);
        return ok ? 0 : EXIT_RUNTIME;
      } catch (err) {
        if (!isOutpostError(err)) throw err;
        process.stderr.write(`${err.message}\n`);
        return err.code === 'BAD_REQUEST' ? EXIT_CONFIG : EXIT_RUNTIME;
      }
    }
    case 'central': {
      // The receiving side of a fleet: its own folder, loaded only for this command.
      const { centralCommand } = await import('../central/cli.js');
      return centralCommand({ configPath: values.config, version: VERSION });
    }
    case 'hash-password': {
      const pw = await readSecret('Password: ');
      if (pw.length < 8) {
        process.stderr.write('password must have at least 8 characters\n');
        return EXIT_CONFIG;
      }
      process.stdout.write(`${await hashPassword(pw)}\n`);
      return 0;
    }
    case 'hash-token': {
      const token = await readSecret('Token: ');
      if (token.length < 24) {
        process.stderr.write('token must have at least 24 characters (use e.g. `openssl rand -hex 24`)\n');
        return EXIT_CONFIG;
      }
      process.stdout.write(`${hashToken(token)}\n`);
      return 0;
    }
    default:
      process.stderr.write(`outpost: unknown command "${command}"\n\n${HELP}`);
      return EXIT_CONFIG;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (err: unknown) => {
    if (isOutpostError(err) && (err.code === 'CONFIG_INVALID' || err.code === 'CONFIG_NOT_FOUND')) {
      process.stderr.write(`${err.message}\n`);
      process.exitCode = EXIT_CONFIG;
      return;
    }
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`outpost: ${(err as Error).message}\n\n${HELP}`);
      process.exitCode = EXIT_CONFIG;
      return;
    }
    process.stderr.write(`outpost: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = EXIT_RUNTIME;
  },
);
