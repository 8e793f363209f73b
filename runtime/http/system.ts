import express, { type Request, type Response } from 'express';
import type { IncomingMessage } from 'node:http';
import os from 'node:os';
import { defineErrors, OutpostError, toOutpostError, type CodesOf } from '../../core/errors.js';
import type { Clock } from '../../core/clock.js';
import { plainAddress } from '../net.js';
import { sourceOf } from '../audit/actor.js';
import type { AuditSink } from '../audit/entry.js';
import { roleAtLeast, type Principal } from '../auth/roles.js';
import type { Logger } from '../log.js';
import { directoryBytes } from '../../storage/directory-bytes.js';
import {
  EXIT_RESTART,
  clockSync,
  detectSupervisor,
  diskInfo,
  memoryInfo,
  osName,
  packageVersion,
  restartNote,
  type ClockSync,
  type Supervisor,
} from '../system-info.js';

/** The System page's codes (core/errors.ts explains catalogues). */
export const systemErrors = defineErrors({
  SYSTEM_RESTART_UNSUPERVISED: { status: 409, retryable: false, message: 'nothing would start the gateway again after a restart' },
  SYSTEM_RESTART_UNAVAILABLE: { status: 409, retryable: false, message: 'this gateway runs inside another program and cannot restart itself' },
});

declare module '../../core/errors.js' {
  interface ErrorCatalogue extends CodesOf<typeof systemErrors> {}
}

/** How long a clock-sync answer is reused: it spawns up to two programs. */
const CLOCK_CACHE_MS = 30_000;

export interface SystemDeps {
  /** The gateway's data directory: its file system is the disk shown. */
  dataDir: string;
  /** The database directory (a store with a location), for its size. */
  storePath?: string;
  /** `storage.retention.maxBytes`: the disk budget retention keeps the store under. */
  budgetBytes?: number;
  gateway: { id: string; name?: string; timezone: string };
  version: string;
  /** Epoch ms the gateway started. */
  startedAt: number;
  clock: Clock;
  /** Node-RED: on or off, and where its editor is. */
  flows: { enabled: boolean; editorPath: string };
  /**
   * Stops the gateway cleanly and exits with EXIT_RESTART (the CLI's hook). Absent when the
   * gateway runs inside another program (tests): a restart is refused, not faked.
   */
  restart?: () => void;
  /** Tests set it; default: detected from the environment (system-info.ts). */
  supervisor?: Supervisor;
  /** Tests replace the probe; default `clockSync()`. */
  clockProbe?: () => Promise<ClockSync>;
  log: Logger;
  audit?: AuditSink;
  clientAddress?: (req: IncomingMessage) => string;
}

function requireAdmin(req: Request, res: Response): Principal {
  const principal = res.locals.principal as Principal | undefined;
  if (!principal) throw new OutpostError('NOT_AUTHENTICATED', 'log in, or send "Authorization: Bearer <token>"');
  if (!roleAtLeast(principal.role, 'admin'))
    throw new OutpostError('FORBIDDEN', `${req.method} ${req.path} needs the admin role; "${principal.name}" is ${principal.role}`);
  return principal;
}

/**
 * `GET /api/system` (any role): disk, memory, load, clock sync, uptimes, versions, flows and
 * what a restart would do. `GET /api/system/flows`: only whether Node-RED runs and where its
 * editor is (the dashboard's navigation asks it once). `POST /api/system/restart` (admin,
 * audited as `system.restart`): answers 202, then stops the gateway cleanly and exits with
 * EXIT_RESTART for the service manager to start it again; refused (409) when nothing would.
 */
export function systemRoutes(deps: SystemDeps): express.Router {
  const r = express.Router();
  const supervisor = deps.supervisor ?? detectSupervisor();
  const probe = deps.clockProbe ?? (() => clockSync());
  let clockCache: { at: number; value: Promise<ClockSync> } | undefined;
  let versions: Promise<Record<string, string | null>> | undefined;
  let restarting = false;

  const clock = (): Promise<ClockSync> => {
    const now = Date.now();
    if (!clockCache || now - clockCache.at > CLOCK_CACHE_MS) clockCache = { at: now, value: probe() };
    return clockCache.value;
  };
  // Versions do not change while the process runs: read once.
  const versionsOnce = (): Promise<Record<string, string | null>> =>
    (versions ??= osName().then((name) => ({
      outpost: deps.version,
      node: process.versions.node,
      aedes: packageVersion('aedes'),
      nodeRed: packageVersion('node-red'),
      // LevelDB through `level`, whose Node binding is classic-level (LevelDB 1.23 compiled in).
      level: packageVersion('level'),
      leveldbBinding: packageVersion('classic-level'),
      os: name,
      kernel: `${os.type()} ${os.release()} (${os.arch()})`,
    })));
  const editor = deps.flows.enabled ? `${deps.flows.editorPath}/` : null;

  r.get('/api/system', async (_req, res) => {
    const [disk, memory, clockState, v, storeBytes] = await Promise.all([
      diskInfo(deps.dataDir).catch((err: unknown) => ({ path: deps.dataDir, error: toOutpostError(err).message })),
      memoryInfo(),
      clock(),
      versionsOnce(),
      deps.storePath ? directoryBytes(deps.storePath).catch(() => null) : Promise.resolve(null),
    ]);
    const now = deps.clock.now();
    const [load1, load5, load15] = os.loadavg();
    res.json({
      gateway: deps.gateway,
      time: { now, timezone: deps.gateway.timezone },
      disk: { ...disk, storeBytes, budgetBytes: deps.budgetBytes ?? null },
      memory,
      cpu: { count: os.availableParallelism(), model: os.cpus()[0]?.model ?? null, load: { avg1: load1, avg5: load5, avg15: load15 } },
      uptime: { processSeconds: Math.round((now - deps.startedAt) / 1000), hostSeconds: Math.round(os.uptime()), startedAt: deps.startedAt },
      clock: clockState,
      versions: v,
      flows: { enabled: deps.flows.enabled, editor },
      restart: {
        available: deps.restart !== undefined && supervisor !== 'terminal',
        supervisor,
        exitCode: EXIT_RESTART,
        note: deps.restart ? restartNote(supervisor) : 'this gateway runs inside another program: restart that program',
      },
    });
  });

  r.get('/api/system/flows', (_req, res) => {
    res.json({ enabled: deps.flows.enabled, editor });
  });

  r.post('/api/system/restart', (req, res) => {
    const address = deps.clientAddress?.(req) ?? plainAddress(req.socket.remoteAddress ?? 'unknown');
    const details = { supervisor, exitCode: EXIT_RESTART };
    const entry = { action: 'system.restart', ...sourceOf(res.locals.principal as Principal | undefined, address), target: deps.gateway.id, details };
    let who: Principal;
    try {
      who = requireAdmin(req, res);
      if (!deps.restart)
        throw new OutpostError('SYSTEM_RESTART_UNAVAILABLE', 'this gateway runs inside another program (a test, an embedding host): restart that program');
      if (supervisor === 'terminal') throw new OutpostError('SYSTEM_RESTART_UNSUPERVISED', `the gateway was ${restartNote('terminal')}`);
    } catch (err) {
      const e = toOutpostError(err);
      deps.audit?.record({ ...entry, outcome: 'refused', error: { code: e.code, message: e.message } });
      throw err;
    }
    if (!restarting) {
      restarting = true;
      deps.audit?.record({ ...entry, outcome: 'ok' });
      deps.log.warn(
        { user: who.name, address, supervisor, exitCode: EXIT_RESTART },
        'restart requested: stopping, then exiting for the service manager to start again',
      );
      // Once the answer is sent: the stop closes this server.
      const restart = deps.restart;
      res.on('finish', () => setImmediate(restart));
    }
    res
      .status(202)
      .json({ restarting: true, supervisor, exitCode: EXIT_RESTART, message: `Restarting: the gateway stops cleanly and exits; ${restartNote(supervisor)}.` });
  });

  return r;
}
