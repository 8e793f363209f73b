import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Gateway } from '../../runtime/gateway.js';
import { validateConfig } from '../../runtime/config/load.js';
import { createLogger } from '../../runtime/log.js';
import { adapterTypes as builtinTypes } from '../../adapters/index.js';
import type { AdapterType } from '../../runtime/adapter.js';
import type { Teardown } from './teardown.js';

export interface TestGateway {
  gateway: Gateway;
  mqttUrl: string;
  httpUrl: string;
  dataDir: string;
  /** Every log record written so far, parsed. */
  logs: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

/**
 * Starts a real gateway in-process on free loopback ports with a temp data dir.
 * `config` is raw (as in YAML); extra adapter types can be added for tests.
 */
export async function startTestGateway(
  t: Teardown,
  config: Record<string, unknown> = {},
  options: { types?: AdapterType[]; dataDir?: string; backoff?: { initialMs: number; maxMs: number } } = {},
): Promise<TestGateway> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'outpost-test-')));
  const types = new Map(builtinTypes);
  for (const type of options.types ?? []) types.set(type.type, type);
  const raw = {
    dataDir,
    log: { level: 'debug' },
    ...config,
    // Tests of features, not of access, use the documented opt-in role for local tools;
    // the security tests (test/security) run with the default, `none`.
    auth: { loopback: 'admin', ...(config.auth as object) },
    broker: { ...(config.broker as object), mqtt: { host: '127.0.0.1', port: 0, ...((config.broker as { mqtt?: object })?.mqtt ?? {}) } },
    http: { host: '127.0.0.1', port: 0, ...(config.http as object) },
  };
  const cfg = validateConfig(raw, types);
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line));
      cb();
    },
  });
  const log = createLogger({ level: cfg.log.level, pretty: false, destination: sink });
  const gateway = new Gateway({ config: cfg, log, adapterTypes: types, backoff: options.backoff ?? { initialMs: 50, maxMs: 500 } });
  const addresses = await gateway.start();
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await gateway.stop();
  };
  t.teardown(async () => {
    await stop();
    if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
  });
  return { gateway, mqttUrl: `mqtt://127.0.0.1:${addresses.mqttPort}`, httpUrl: addresses.httpUrl, dataDir, logs, stop };
}

/** Polls `check` until it returns a truthy value or the time runs out. */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 5000, stepMs = 20): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
