// The `config` downlink command (issue 26, item 3): a whole outpost.yaml pushed by the central
// side, checked here exactly as `outpost start` would check it, stored as `<config>.pending`
// and applied at the next start (runtime/config/pending.ts) — at once, by a graceful restart,
// when the site allows it. runtime/sync/README.md, "Remote configuration", has the command
// shape and the threat model.
import { readFile } from 'node:fs/promises';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import type { Clock } from '../../core/clock.js';
import type { EventSink } from '../../core/events.js';
import './errors.js';
import type { AdapterType } from '../adapter.js';
import type { AuditSink } from '../audit/entry.js';
import type { Config } from '../config/schema.js';
import type { DatapointRegistry } from '../datapoints/registry.js';
import type { Ingest } from '../ingest.js';
import type { Logger } from '../log.js';
import type { Store } from '../../storage/store.js';
import { detectSupervisor, restartNote, type Supervisor } from '../system-info.js';
import {
  checkPushedConfig,
  configFiles,
  MAX_CONFIG_BYTES,
  readReport,
  sha256Hex,
  writePending,
  type ApplyMode,
  type ConfigFiles,
  type ConfigStartup,
  type RemoteConfigReport,
} from '../config/pending.js';
import type { ConfigCommandHandler, ConfigCommandOrigin } from './downlink.js';

export interface ConfigStatusTarget {
  registry: Pick<DatapointRegistry, 'register'>;
  ingest: Pick<Ingest, 'acceptMany'>;
  /** The stored values: one that has not changed is not written again (a restart adds nothing to the outbox). */
  store: Pick<Store, 'latest'>;
  clock: Clock;
  log: Logger;
}

const STATUS_DATAPOINTS = [
  { id: 'gateway.config.sha256', description: 'sha256 of the active configuration file' },
  { id: 'gateway.config.state', description: 'pushed configuration: local, pending, applied or rolled-back' },
  { id: 'gateway.config.error', description: 'why the last pushed configuration was refused at start or rolled back' },
] as const;

/**
 * Writes `gateway.config.sha256`, `.state` and `.error` (registered on first use), those that
 * changed. They are stored and go upstream through the outbox like the `gateway.sync.*`
 * datapoints: the report of an outcome the command's ack could not carry (the ack went before
 * the restart).
 */
export async function publishConfigStatus(target: ConfigStatusTarget, report: RemoteConfigReport): Promise<void> {
  try {
    for (const d of STATUS_DATAPOINTS) await target.registry.register({ ...d, adapter: 'sync', kind: 'sensor', type: 'string' });
    const t = target.clock.now();
    const points = [
      { id: 'gateway.config.sha256', v: report.sha256, t },
      { id: 'gateway.config.state', v: report.state, t },
      { id: 'gateway.config.error', v: report.error.slice(0, 500), t },
    ].filter((p) => target.store.latest(p.id)?.v !== p.v);
    if (points.length > 0) await target.ingest.acceptMany('sync', points);
  } catch (err) {
    target.log.warn({ err: toOutpostError(err).message }, 'gateway.config datapoints not written');
  }
}

export interface RemoteConfigOptions {
  /** The file the gateway was started from (`-c`); without one (demo, embedded) config commands are refused. */
  configFile: string | undefined;
  /** The running config: its `sync.remoteConfig` is the first gate, read without touching the disk. */
  config: Config;
  adapterTypes: ReadonlyMap<string, AdapterType>;
  env?: NodeJS.ProcessEnv;
  /** The CLI's graceful restart (exit 75); absent when embedded. */
  restart?: () => void;
  supervisor?: Supervisor;
  audit?: AuditSink;
  events?: EventSink;
  /** With these, `gateway.config.*` say `pending` as soon as a config is accepted. */
  registry?: ConfigStatusTarget['registry'];
  ingest?: ConfigStatusTarget['ingest'];
  store?: ConfigStatusTarget['store'];
  clock: Clock;
  log: Logger;
}

type PushOrigin = ConfigCommandOrigin & { requestId: string };

const MAX_ERROR_CHARS = 4000;

const BODY_KEYS = new Set(['yaml', 'sha256', 'apply', 'gw']);

/**
 * The `config` command: `{requestId, type: "config", yaml, sha256?, apply?: "restart" | "next-start"}`.
 * One at a time (whatever the link). Refused, each with its code: remote configuration off
 * (CONFIG_REMOTE_DISABLED), over the satellite (CONFIG_REMOTE_TRANSPORT), over MAX_CONFIG_BYTES
 * (CONFIG_REMOTE_TOO_BIG), `sha256` not that of `yaml` (CONFIG_REMOTE_HASH_MISMATCH), YAML,
 * schema or start checks (CONFIG_INVALID, the text of `outpost check`), security-sensitive keys
 * (CONFIG_REMOTE_SECURITY). Accepted: stored as pending, answered `{state: "pending", sha256,
 * apply}`, then — `apply` not `next-start` and the site's `restart: true` — the gateway restarts
 * gracefully. Every command is audited (`config.push`, actor `upstream:<link>`).
 */
export class RemoteConfigReceiver implements ConfigCommandHandler {
  private queue: Promise<unknown> = Promise.resolve();
  private restarting = false;
  private readonly supervisor: Supervisor;

  constructor(private readonly o: RemoteConfigOptions) {
    this.supervisor = o.supervisor ?? detectSupervisor();
  }

  handle(body: Record<string, unknown>, from: PushOrigin): Promise<unknown> {
    const run = this.queue.then(() => this.receive(body, from));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** A config command refused before it reached `handle` (the link: signature, age; a malformed command). */
  refused(from: ConfigCommandOrigin, error: OutpostError): void {
    this.record(from, undefined, error);
  }

  private async receive(body: Record<string, unknown>, from: PushOrigin): Promise<unknown> {
    const facts: Record<string, unknown> = {};
    try {
      const result = await this.accept(body, from, facts);
      this.record(from, facts, undefined);
      return result;
    } catch (err) {
      const full = toOutpostError(err);
      // The ack carries the message upstream: a config with hundreds of typos must not make it huge.
      const e = full.message.length > MAX_ERROR_CHARS ? new OutpostError(full.code, `${full.message.slice(0, MAX_ERROR_CHARS)}… (cut)`) : full;
      this.record(from, facts, e);
      this.o.events?.record({
        source: 'sync',
        kind: 'config.refused',
        severity: 'warning',
        message: `pushed configuration refused (${e.code}): ${e.message.split('\n')[0]!.slice(0, 200)}`,
        data: { requestId: from.requestId, link: from.link ?? from.source, code: e.code, ...facts },
      });
      throw e;
    }
  }

  private async accept(body: Record<string, unknown>, from: PushOrigin, facts: Record<string, unknown>): Promise<unknown> {
    const policy = this.o.config.sync.remoteConfig;
    if (!policy.enabled)
      throw new OutpostError(
        'CONFIG_REMOTE_DISABLED',
        'remote configuration is off on this gateway (sync.remoteConfig.enabled: false, the default); its operator turns it on in outpost.yaml',
      );
    // An MT message carries at most 270 bytes; a config needs many. The satellite link only makes setpoints, so this is a guard.
    if (from.source.startsWith('iridium:'))
      throw new OutpostError(
        'CONFIG_REMOTE_TRANSPORT',
        'a configuration cannot be pushed over the satellite link (an MT message holds 270 bytes): use the MQTT or HTTP link',
      );
    if (this.o.configFile === undefined)
      throw new OutpostError('CONFIG_REMOTE_UNAVAILABLE', 'this gateway was not started from a config file (outpost start -c …): there is nothing to replace');
    const extra = Object.keys(body).filter((k) => !BODY_KEYS.has(k));
    if (extra.length > 0)
      throw new OutpostError('SYNC_COMMAND_INVALID', `config command has unknown field(s) ${extra.join(', ')}; expected yaml, sha256?, apply?, gw?`);
    const { yaml, sha256, apply, gw } = body;
    // The MQTT link checks a signed body's `gw` itself; an HTTP poll item may carry one too.
    if (gw !== undefined && gw !== this.o.config.gateway.id)
      throw new OutpostError('SYNC_COMMAND_INVALID', `config command is for gateway ${JSON.stringify(gw)}, this is "${this.o.config.gateway.id}"`);
    if (typeof yaml !== 'string' || yaml.trim() === '')
      throw new OutpostError('SYNC_COMMAND_INVALID', 'config command needs "yaml": the whole outpost.yaml as a string');
    const bytes = Buffer.byteLength(yaml, 'utf8');
    facts.bytes = bytes;
    if (bytes > MAX_CONFIG_BYTES)
      throw new OutpostError('CONFIG_REMOTE_TOO_BIG', `pushed config is ${bytes} bytes; at most ${MAX_CONFIG_BYTES}`, {
        details: { bytes, max: MAX_CONFIG_BYTES },
      });
    const actual = sha256Hex(yaml);
    facts.sha256 = actual;
    if (sha256 !== undefined) {
      if (typeof sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(sha256))
        throw new OutpostError('SYNC_COMMAND_INVALID', '"sha256" must be 64 hex digits: the SHA-256 of the UTF-8 bytes of "yaml"');
      if (sha256.toLowerCase() !== actual)
        throw new OutpostError(
          'CONFIG_REMOTE_HASH_MISMATCH',
          `"yaml" has sha256 ${actual}, the command says ${sha256.toLowerCase()}: cut or changed on the way`,
        );
    }
    if (apply !== undefined && apply !== 'restart' && apply !== 'next-start')
      throw new OutpostError('SYNC_COMMAND_INVALID', `"apply" must be "restart" or "next-start", not ${JSON.stringify(apply)}`);
    const files = await this.filesOf(this.o.configFile);
    // The running data dir when `--data-dir` moved it from the file's: what start would use.
    const dataDirOverride = this.o.config.dataDir;
    await checkPushedConfig(yaml, {
      files,
      adapterTypes: this.o.adapterTypes,
      env: this.o.env ?? process.env,
      dataDirOverride,
    });
    const restart = this.restartPlan(apply as ApplyMode | undefined);
    facts.apply = restart.mode;
    const pushedBy = `upstream:${from.link ?? from.source}`;
    await writePending(files, yaml, { sha256: actual, requestId: from.requestId, from: pushedBy, receivedAt: this.o.clock.now(), apply: restart.mode });
    this.o.log.warn({ requestId: from.requestId, from: pushedBy, sha256: actual, apply: restart.mode }, `pushed config accepted: ${restart.note}`);
    this.o.events?.record({
      source: 'sync',
      kind: 'config.pending',
      severity: 'info',
      message: `configuration ${actual.slice(0, 12)} pushed by ${pushedBy} is pending: ${restart.note}`,
      data: { requestId: from.requestId, sha256: actual, apply: restart.mode },
    });
    // The active file is unchanged: its hash, and the state `pending` writePending stored.
    const { registry, ingest, store, clock, log } = this.o;
    if (registry && ingest && store)
      await publishConfigStatus({ registry, ingest, store, clock, log }, await readReport(files, sha256Hex(await readFile(files.active))));
    if (restart.mode === 'restart' && this.o.restart && !this.restarting) {
      this.restarting = true;
      const hook = this.o.restart;
      // After this ack is on its way: the links' graceful stop still delivers it (and both remember it durably).
      setTimeout(hook, 100);
    }
    return { state: 'pending', sha256: actual, apply: restart.mode, note: restart.note };
  }

  /** Whether this command restarts the gateway, and in words why (or why not). */
  private restartPlan(asked: ApplyMode | undefined): { mode: ApplyMode; note: string } {
    if (asked === 'next-start') return { mode: 'next-start', note: 'applies at the next start (asked for)' };
    if (!this.o.config.sync.remoteConfig.restart)
      return { mode: 'next-start', note: 'applies at the next start (sync.remoteConfig.restart is false on this site)' };
    if (!this.o.restart) return { mode: 'next-start', note: 'applies at the next start (this gateway runs inside another program and cannot restart itself)' };
    if (this.supervisor === 'terminal') return { mode: 'next-start', note: `applies at the next start (${restartNote('terminal')})` };
    return { mode: 'restart', note: `the gateway restarts now: ${restartNote(this.supervisor)}` };
  }

  private async filesOf(configFile: string): Promise<ConfigFiles> {
    try {
      return await configFiles(configFile);
    } catch (err) {
      throw new OutpostError('CONFIG_REMOTE_UNAVAILABLE', `the config file ${configFile} is gone: ${(err as Error).message}`);
    }
  }

  private record(from: ConfigCommandOrigin, facts: Record<string, unknown> | undefined, error: OutpostError | undefined): void {
    this.o.audit?.record({
      action: 'config.push',
      actor: { kind: 'upstream', name: from.link ?? from.source },
      target: this.o.config.gateway.id,
      details: { requestId: from.requestId, source: from.source, ...facts },
      outcome: error ? 'refused' : 'ok',
      ...(error ? { error: { code: error.code, message: error.message } } : {}),
    });
  }
}

/**
 * Once `outpost start` has the gateway ready: a trial config is applied (ConfigStartup.ready),
 * what this start did goes to the event log, and `gateway.config.*` say which config runs
 * and how it came to (upstream through the outbox) — on a site that takes pushed configs or
 * has had one; a site that never uses the feature gets no datapoints from it.
 */
export async function reportConfigAtStart(
  startup: ConfigStartup,
  gateway: Omit<ConfigStatusTarget, 'log'> & { events: EventSink | undefined; config: Config },
  log: Logger,
): Promise<void> {
  let report: RemoteConfigReport;
  try {
    report = await startup.ready();
  } catch (err) {
    log.error({ err: toOutpostError(err).message }, 'pushed config: trial not marked applied (the next start rolls it back)');
    return;
  }
  if (report.sha256 === '') return;
  if (startup.outcome === 'applied') {
    log.info({ sha256: report.sha256, requestId: report.requestId }, 'pushed config applied');
    gateway.events?.record({
      source: 'sync',
      kind: 'config.applied',
      severity: 'info',
      message: `pushed configuration ${report.sha256.slice(0, 12)} applied`,
      data: { sha256: report.sha256, requestId: report.requestId },
    });
  } else if (startup.outcome === 'rolled-back') {
    gateway.events?.record({
      source: 'sync',
      kind: 'config.rolled-back',
      severity: 'warning',
      message: report.error.slice(0, 300) || 'pushed configuration rolled back',
      data: { sha256: report.sha256, requestId: report.requestId },
    });
  }
  if (report.state === 'local' && !gateway.config.sync.remoteConfig.enabled) return;
  await publishConfigStatus({ registry: gateway.registry, ingest: gateway.ingest, store: gateway.store, clock: gateway.clock, log }, report);
}
