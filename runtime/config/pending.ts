// A configuration pushed by the central side, on disk next to the active one, and what
// `outpost start` does with it (issue 26, remote config). The files, for `<config>` the real
// path of the file given with -c:
//
//   <config>.pending        the accepted YAML, waiting for the next start
//   <config>.pending.json   its sha256, requestId, link and time (PendingMeta)
//   <config>.previous       the config that was active before the last one applied
//   <config>.trial.json     a start on a newly applied config that has not been ready yet (TrialMarker)
//   <config>.rejected       the last pushed config refused at start or rolled back
//   <config>.remote.json    the last outcome (StoredStatus): reported upstream as gateway.config.*
//
// Every write is durable (runtime/durable-file.ts): temp file, fsync, rename, directory fsync.
import { createHash } from 'node:crypto';
import { readFile, realpath, rename, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { defineErrors, OutpostError, toOutpostError, type CodesOf } from '../../core/errors.js';
import { fsyncDir, readJsonState, writeFileDurably, writeJsonState } from '../durable-file.js';
import type { AdapterType } from '../adapter.js';
import { assertConfigChecks } from './check.js';
import { parseConfigText, validateConfig, type ConfigIssue } from './load.js';
import { securityChanges } from './remote-policy.js';
import type { Config } from './schema.js';

/** Codes of a pushed configuration refused (the ack's `error.code`); schema and check failures are CONFIG_INVALID, as `outpost check` says. */
export const remoteConfigErrors = defineErrors({
  CONFIG_REMOTE_DISABLED: { status: 403, retryable: false, message: 'remote configuration is not enabled on this gateway' },
  CONFIG_REMOTE_UNAVAILABLE: { status: 409, retryable: false, message: 'this gateway cannot take a pushed configuration' },
  CONFIG_REMOTE_TRANSPORT: { status: 400, retryable: false, message: 'a configuration cannot be pushed over this transport' },
  CONFIG_REMOTE_TOO_BIG: { status: 413, retryable: false, message: 'pushed configuration is too big' },
  CONFIG_REMOTE_HASH_MISMATCH: { status: 400, retryable: false, message: 'pushed configuration does not match its sha256' },
  CONFIG_REMOTE_SECURITY: { status: 403, retryable: false, message: 'pushed configuration changes security-sensitive keys' },
  CONFIG_REMOTE_WRITE_FAILED: { status: 500, retryable: true, message: 'pushed configuration could not be stored' },
});

declare module '../../core/errors.js' {
  interface ErrorCatalogue extends CodesOf<typeof remoteConfigErrors> {}
}

/** Largest pushed YAML (bytes of UTF-8). A site config is a few KiB; this leaves room for big adapter maps. */
export const MAX_CONFIG_BYTES = 256 * 1024;

export interface ConfigFiles {
  active: string;
  pending: string;
  pendingMeta: string;
  previous: string;
  trial: string;
  rejected: string;
  status: string;
}

/** The files of a config, next to its real path (a symlinked config is replaced where it lives, not the link). */
export async function configFiles(configPath: string): Promise<ConfigFiles> {
  const active = await realpath(configPath);
  return {
    active,
    pending: `${active}.pending`,
    pendingMeta: `${active}.pending.json`,
    previous: `${active}.previous`,
    trial: `${active}.trial.json`,
    rejected: `${active}.rejected`,
    status: `${active}.remote.json`,
  };
}

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export type ApplyMode = 'restart' | 'next-start';

export interface PendingMeta {
  sha256: string;
  requestId: string;
  /** Who pushed it: `upstream:<link>`. */
  from: string;
  receivedAt: number;
  apply: ApplyMode;
}

/**
 * `applying`: the pending file is being made the active one (a crash here finishes or undoes
 * it at the next start); `trial`: the gateway starts on it and has not been ready yet — found
 * at a start, that start failed and the previous config comes back.
 */
export interface TrialMarker {
  phase: 'applying' | 'trial';
  sha256: string;
  previousSha256: string;
  requestId: string;
  from: string;
  startedAt: number;
  /** Why the start on it failed, when the process could still say so. */
  error?: string;
}

export type RemoteConfigState = 'local' | 'pending' | 'applied' | 'rolled-back';

export interface StoredStatus {
  state: Exclude<RemoteConfigState, 'local'>;
  /** sha256 of the config file active when this was written: a hand edit since makes the state `local`. */
  activeSha256: string;
  requestId?: string;
  pendingSha256?: string;
  rejectedSha256?: string;
  error?: string;
  t: number;
}

/** What is reported upstream (gateway.config.*) and in the event log. */
export interface RemoteConfigReport {
  state: RemoteConfigState;
  /** sha256 of the active config file. */
  sha256: string;
  error: string;
  requestId?: string;
}

export interface PushedConfigContext {
  files: ConfigFiles;
  adapterTypes: ReadonlyMap<string, AdapterType>;
  env: NodeJS.ProcessEnv;
  /** The data dir the gateway runs on when `--data-dir` moved it from the file's. */
  dataDirOverride?: string;
  /** Doubtful but possibly right (`outpost check` warnings). */
  warnings?: ConfigIssue[];
}

/**
 * The checks a pushed config passes, when it arrives and again at the start that would apply
 * it (one function, so they cannot disagree): remote configuration enabled in the ACTIVE file,
 * YAML, schema (CONFIG_INVALID with the paths and lines `outpost check` gives), no
 * security-sensitive change unless the active file allows it (remote-policy.ts; before the
 * start checks, so that no file a push names is read unless the site allows it), then what
 * `start` checks (runtime/config/check.ts).
 */
export async function checkPushedConfig(text: string, ctx: PushedConfigContext): Promise<Config> {
  const source = `pushed config ${sha256Hex(text).slice(0, 12)}`;
  let active: Config;
  try {
    active = validateConfig(parseConfigText(await readFile(ctx.files.active, 'utf8'), ctx.files.active), ctx.adapterTypes, {
      env: ctx.env,
      source: ctx.files.active,
    });
  } catch (err) {
    throw new OutpostError(
      'CONFIG_REMOTE_UNAVAILABLE',
      `the active config ${ctx.files.active} cannot be read or is invalid itself: ${toOutpostError(err).message}`,
    );
  }
  if (!active.sync.remoteConfig.enabled)
    throw new OutpostError('CONFIG_REMOTE_DISABLED', `remote configuration is off: sync.remoteConfig.enabled is not true in ${ctx.files.active}`);
  const candidate = validateConfig(parseConfigText(text, source), ctx.adapterTypes, { env: ctx.env, source });
  if (!active.sync.remoteConfig.allowSecurity) {
    const changes = securityChanges(active, candidate);
    if (changes.length > 0)
      throw new OutpostError(
        'CONFIG_REMOTE_SECURITY',
        `${source} changes security-sensitive keys, which this site takes only from its own operator (or with sync.remoteConfig.allowSecurity: true): ${changes.slice(0, 20).join(', ')}${changes.length > 20 ? ` (${changes.length - 20} more)` : ''}`,
        { details: { paths: changes } },
      );
  }
  // As at start: `--data-dir` wins over the file's dataDir.
  if (ctx.dataDirOverride !== undefined && candidate.dataDir === active.dataDir) candidate.dataDir = ctx.dataDirOverride;
  await assertConfigChecks(candidate, ctx.adapterTypes, { source, configDir: dirname(ctx.files.active), warnings: ctx.warnings ?? [] });
  return candidate;
}

/** Stores an accepted config as `<config>.pending` (mode of the active file: it may hold secrets) and its meta. */
export async function writePending(files: ConfigFiles, text: string, meta: PendingMeta): Promise<void> {
  try {
    const mode = (await stat(files.active)).mode & 0o777;
    // The YAML first: a meta file names only a YAML that is complete (its sha256 is checked at start).
    await writeFileDurably(files.pending, text, { mode });
    await writeJsonState(files.pendingMeta, meta);
    await writeJsonState(files.status, {
      state: 'pending',
      activeSha256: sha256Hex(await readFile(files.active)),
      requestId: meta.requestId,
      pendingSha256: meta.sha256,
      t: meta.receivedAt,
    } satisfies StoredStatus);
  } catch (err) {
    throw new OutpostError(
      'CONFIG_REMOTE_WRITE_FAILED',
      `cannot store the pushed config next to ${files.active} (the gateway needs write access to that folder): ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** A JSON state file or undefined; a damaged one is reported and left out (it must never stop a start). */
async function optionalJson<T>(file: string, notes: StartNote[]): Promise<T | undefined> {
  try {
    return await readJsonState<T | undefined>(file, undefined);
  } catch (err) {
    notes.push({ level: 'warn', msg: `${file} is unreadable and was ignored: ${(err as Error).message}`, fields: { file } });
    return undefined;
  }
}

async function removeFile(file: string): Promise<void> {
  try {
    await unlink(file);
    await fsyncDir(dirname(file));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

export interface StartNote {
  level: 'info' | 'warn' | 'error';
  msg: string;
  fields: Record<string, unknown>;
}

const short = (sha: string): string => sha.slice(0, 12);

/**
 * What `outpost start` does before it loads the config (`prepare`) and once the gateway is
 * ready (`ready`): a failed trial rolls back to the previous config; a pending config is checked
 * again (checkPushedConfig) and, if good, becomes the active file by an atomic rename with the
 * previous one kept, under a trial marker; if not, it is set aside and the start goes on with
 * the active file. Nothing here stops a start: a problem is a note for the log and the report.
 */
export class ConfigStartup {
  /** Logged once the gateway's logger exists. */
  readonly notes: StartNote[] = [];
  /** What this start did with a pushed config. */
  outcome: 'applied' | 'rolled-back' | undefined;
  private trial: TrialMarker | undefined;
  private activeSha = '';

  private constructor(
    private readonly files: ConfigFiles | undefined,
    private readonly now: () => number,
  ) {}

  static async prepare(o: {
    configPath: string;
    adapterTypes: ReadonlyMap<string, AdapterType>;
    env: NodeJS.ProcessEnv;
    dataDirOverride?: string;
    now?: () => number;
  }): Promise<ConfigStartup> {
    const now = o.now ?? Date.now;
    let files: ConfigFiles;
    try {
      files = await configFiles(o.configPath);
    } catch {
      // No config file: loading it says so, with the CLI's message.
      return new ConfigStartup(undefined, now);
    }
    const startup = new ConfigStartup(files, now);
    try {
      await startup.run({ files, adapterTypes: o.adapterTypes, env: o.env, ...(o.dataDirOverride ? { dataDirOverride: o.dataDirOverride } : {}) });
    } catch (err) {
      startup.notes.push({ level: 'error', msg: `pushed config not handled: ${(err as Error).message}; starting on ${files.active} as it is`, fields: {} });
    }
    return startup;
  }

  private async run(ctx: PushedConfigContext): Promise<void> {
    const { files } = ctx;
    let activeText: Buffer = await readFile(files.active);
    this.activeSha = sha256Hex(activeText);
    const mode = (await stat(files.active)).mode & 0o777;
    const marker = await optionalJson<TrialMarker>(files.trial, this.notes);
    if (marker) {
      const restored = await this.resolveMarker(marker, activeText, mode);
      if (restored) activeText = restored;
      this.activeSha = sha256Hex(activeText);
      if (this.trial) return;
    }
    const meta = await optionalJson<PendingMeta>(files.pendingMeta, this.notes);
    if (!meta) {
      await removeFile(files.pending);
      return;
    }
    let text: string;
    try {
      text = await readFile(files.pending, 'utf8');
    } catch {
      text = '';
    }
    let problem: string | undefined;
    if (sha256Hex(text) !== meta.sha256) problem = `the pending file does not match its sha256 ${short(meta.sha256)} (a write cut off by a crash); not applied`;
    else {
      const warnings: ConfigIssue[] = [];
      try {
        await checkPushedConfig(text, { ...ctx, warnings });
      } catch (err) {
        problem = toOutpostError(err).message;
      }
      for (const w of warnings) this.notes.push({ level: 'warn', msg: w.message, fields: { component: 'config', path: w.path } });
    }
    if (problem !== undefined) {
      if (text !== '') await writeFileDurably(files.rejected, text, { mode });
      await this.writeStatus({ state: 'rolled-back', activeSha256: this.activeSha, requestId: meta.requestId, rejectedSha256: meta.sha256, error: problem });
      await removeFile(files.pendingMeta);
      await removeFile(files.pending);
      this.outcome = 'rolled-back';
      this.notes.push({
        level: 'error',
        msg: `pushed config ${short(meta.sha256)} refused at start; running on the active config`,
        fields: { requestId: meta.requestId, reason: problem },
      });
      return;
    }
    // Apply: the previous kept, a marker saying what is being done, then one atomic rename.
    const trial: TrialMarker = {
      phase: 'applying',
      sha256: meta.sha256,
      previousSha256: this.activeSha,
      requestId: meta.requestId,
      from: meta.from,
      startedAt: this.now(),
    };
    await writeFileDurably(files.previous, activeText, { mode });
    await writeJsonState(files.trial, trial);
    await rename(files.pending, files.active);
    await fsyncDir(dirname(files.active));
    await this.beginTrial(trial);
  }

  /** The marker of an earlier start: finish an interrupted apply, or roll back a failed trial. Returns the restored text. */
  private async resolveMarker(marker: TrialMarker, activeText: Buffer, mode: number): Promise<Buffer | undefined> {
    const files = this.files!;
    if (marker.phase === 'applying') {
      if (this.activeSha === marker.sha256) {
        // Renamed before the crash: this start is the trial.
        await this.beginTrial(marker);
        return undefined;
      }
      // Not renamed (the pending file is still there) or edited by hand: the pending is handled as usual.
      await removeFile(files.trial);
      return undefined;
    }
    if (this.activeSha === marker.sha256) {
      const reason = marker.error ?? 'the process ended before the gateway was ready';
      let previous: Buffer | undefined;
      try {
        previous = await readFile(files.previous);
      } catch {
        previous = undefined;
      }
      if (!previous || sha256Hex(previous) !== marker.previousSha256) {
        await removeFile(files.trial);
        this.notes.push({
          level: 'error',
          msg: `the last start on pushed config ${short(marker.sha256)} failed (${reason}), and ${files.previous} is not the config that ran before it: cannot roll back`,
          fields: { requestId: marker.requestId },
        });
        return undefined;
      }
      await writeFileDurably(files.rejected, activeText, { mode });
      await writeFileDurably(files.active, previous, { mode });
      await this.rolledBack(marker, reason);
      return previous;
    }
    if (this.activeSha === marker.previousSha256) await this.rolledBack(marker, marker.error ?? 'the process ended before the gateway was ready');
    else await removeFile(files.trial); // replaced by hand since: that file is what runs
    return undefined;
  }

  private async rolledBack(marker: TrialMarker, reason: string): Promise<void> {
    const error = `the gateway did not start on pushed config ${short(marker.sha256)}: ${reason}; the previous config ${short(marker.previousSha256)} is active again`;
    await this.writeStatus({ state: 'rolled-back', activeSha256: marker.previousSha256, requestId: marker.requestId, rejectedSha256: marker.sha256, error });
    await removeFile(this.files!.trial);
    this.outcome = 'rolled-back';
    this.notes.push({ level: 'error', msg: 'pushed config rolled back', fields: { requestId: marker.requestId, reason: error } });
  }

  private async beginTrial(marker: TrialMarker): Promise<void> {
    const files = this.files!;
    await removeFile(files.pendingMeta);
    this.trial = { ...marker, phase: 'trial' };
    await writeJsonState(files.trial, this.trial);
    this.activeSha = marker.sha256;
    this.notes.push({
      level: 'warn',
      msg: `starting on pushed config ${short(marker.sha256)} (trial: a failed start brings back the previous one)`,
      fields: { requestId: marker.requestId, from: marker.from },
    });
  }

  private async writeStatus(s: Omit<StoredStatus, 't'>): Promise<void> {
    await writeJsonState(this.files!.status, { ...s, t: this.now() } satisfies StoredStatus);
  }

  /** The start failed: a trial remembers why, for the rollback at the next start to report. */
  async failed(err: unknown): Promise<void> {
    if (!this.trial || !this.files) return;
    this.trial.error = toOutpostError(err).message.slice(0, 500);
    await writeJsonState(this.files.trial, this.trial).catch(() => undefined);
  }

  /** The gateway is ready: a trial is applied. Returns what to report (gateway.config.*). */
  async ready(): Promise<RemoteConfigReport> {
    if (!this.files) return { state: 'local', sha256: '', error: '' };
    if (this.trial) {
      await this.writeStatus({ state: 'applied', activeSha256: this.trial.sha256, requestId: this.trial.requestId });
      await removeFile(this.files.trial);
      this.outcome = 'applied';
      this.trial = undefined;
    }
    return readReport(this.files, this.activeSha);
  }
}

/** The last outcome, if it is about the config that is active now; else `local`. */
export async function readReport(files: ConfigFiles, activeSha: string): Promise<RemoteConfigReport> {
  const status = await readJsonState<StoredStatus | undefined>(files.status, undefined).catch(() => undefined);
  if (!status || status.activeSha256 !== activeSha) return { state: 'local', sha256: activeSha, error: '' };
  return { state: status.state, sha256: activeSha, error: status.error ?? '', ...(status.requestId ? { requestId: status.requestId } : {}) };
}
