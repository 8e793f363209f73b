import express, { type Request, type Response } from 'express';
import { plainAddress } from '../net.js';
import type { IncomingMessage } from 'node:http';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import '../../storage/errors.js'; // registers the STORAGE_* codes thrown here
import type { AuditInput, AuditSink } from '../audit/entry.js';
import { sourceOf } from '../audit/actor.js';
import type { Logger } from '../log.js';
import { roleAtLeast, type Principal } from '../auth/roles.js';
import type { Datapoint } from '../../core/datapoint.js';
import { backup, backupGzip, checkBackupOptions, restore, type BackupOptions, type RestoreReport } from '../../storage/backup.js';
import { timeParam } from '../../core/http-params.js';
import type { Store } from '../../storage/store.js';

/**
 * Largest restore upload accepted (a constant, not config: it bounds the spool file on
 * the data disk). About 40 million points of plain NDJSON, far more gzip-compressed.
 */
const MAX_RESTORE_UPLOAD_BYTES = 512 * 1024 * 1024;

export interface BackupRoutesDeps {
  store: Store;
  /** The gateway's datapoint registry: restored definitions become known (and published) at once. */
  registry: {
    get(id: string): Datapoint | undefined;
    register(dp: Datapoint): Promise<unknown>;
  };
  /** The gateway's data dir: uploads are spooled to `<dataDir>/tmp/` (same disk, no RAM). */
  dataDir: string;
  gatewayId: string;
  log: Logger;
  /** Tests lower it; default MAX_RESTORE_UPLOAD_BYTES. */
  maxUploadBytes?: number;
  /** The audit trail: every download and restore, refused ones too. */
  audit?: AuditSink;
  /** The client's address as the auth layer sees it (trusted proxies applied); default the socket peer. */
  clientAddress?: (req: IncomingMessage) => string;
}

export interface HttpRestoreReport extends RestoreReport {
  /** Definitions in the file whose id the running gateway already knew: the live definition was kept. */
  definitionsKept: number;
}

/**
 * Admin only, whatever the path rules of runtime/auth say: a backup holds every reading of
 * the site, a restore rewrites history. The guard in front has already authenticated the
 * request (and checked CSRF for a session's POST); this checks the role.
 */
function requireAdmin(req: Request, res: Response): Principal {
  const principal = res.locals.principal as Principal | undefined;
  if (!principal) throw new OutpostError('NOT_AUTHENTICATED', 'log in, or send "Authorization: Bearer <token>"');
  if (!roleAtLeast(principal.role, 'admin')) {
    throw new OutpostError('FORBIDDEN', `${req.method} ${req.path} needs the admin role; "${principal.name}" is ${principal.role}`);
  }
  return principal;
}

function idsParam(req: Request): string[] | undefined {
  const raw = req.query.ids;
  if (raw === undefined || raw === '') return undefined;
  if (typeof raw !== 'string') throw new OutpostError('BAD_REQUEST', '"ids" must be given once, comma-separated');
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function fileStamp(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

/** Counts bytes through and fails with UPLOAD_TOO_LARGE past the limit (before they reach the disk). */
class ByteLimit extends Transform {
  bytes = 0;
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) return cb(tooLarge(this.limit));
    cb(null, chunk);
  }
}

function tooLarge(limit: number): OutpostError {
  return new OutpostError(
    'UPLOAD_TOO_LARGE',
    `a backup upload may be at most ${limit} bytes; restore larger files with "outpost restore" while the gateway is stopped`,
  );
}

/**
 * `GET /api/admin/backup?from&to&ids=a,b` streams a backup (NDJSON, storage/backup.ts),
 * gzip-encoded when the client accepts it, as an attachment.
 * `POST /api/admin/restore` takes a backup file as the body (plain or gzip; not
 * `application/json`, which the JSON body parser would take), spools it under the data
 * dir, verifies all of it, and only then writes; answers with the report.
 */
export function backupRoutes(deps: BackupRoutesDeps): express.Router {
  const r = express.Router();
  const maxUpload = deps.maxUploadBytes ?? MAX_RESTORE_UPLOAD_BYTES;
  /** One restore at a time: two would interleave their batches and double the spool space. */
  let restoring = false;
  /** Records one download or restore; `err` makes it a refusal. */
  const audit = (req: Request, res: Response, action: string, details: Record<string, unknown>, err?: unknown): void => {
    if (!deps.audit) return;
    const source = sourceOf(res.locals.principal as Principal | undefined, deps.clientAddress?.(req) ?? plainAddress(req.socket.remoteAddress ?? 'unknown'));
    const entry: AuditInput = { action, ...source, target: deps.gatewayId, details, outcome: 'ok' };
    if (err !== undefined) {
      const e = toOutpostError(err);
      entry.outcome = 'refused';
      entry.error = { code: e.code, message: e.message };
    }
    deps.audit.record(entry);
  };

  r.get('/api/admin/backup', async (req, res) => {
    let principal: Principal;
    let options: BackupOptions;
    try {
      principal = requireAdmin(req, res);
      options = { from: timeParam(req, 'from'), to: timeParam(req, 'to'), ids: idsParam(req), gateway: deps.gatewayId };
      // Refused here, while the answer can still be a JSON error rather than a cut-off file.
      checkBackupOptions(options);
    } catch (err) {
      audit(req, res, 'backup.download', {}, err);
      throw err;
    }
    // No Accept-Encoding (curl without --compressed) gets plain NDJSON, not gzip it did not ask for.
    const gzip = req.headers['accept-encoding'] !== undefined && req.acceptsEncodings('gzip', 'identity') === 'gzip';
    const name = `outpost-backup-${deps.gatewayId}-${fileStamp(Date.now())}.ndjson`;
    res.setHeader('Content-Type', 'application/x-ndjson; charset=utf-8');
    res.setHeader('Content-Disposition', `attachment; filename="${name}"`);
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Vary', 'Accept-Encoding');
    if (gzip) res.setHeader('Content-Encoding', 'gzip');
    try {
      const summary = gzip ? await backupGzip(deps.store, res, options) : await backup(deps.store, res, options);
      deps.log.info(
        { user: principal.name, datapoints: summary.datapoints, points: summary.points, from: summary.from, to: summary.to, gzip },
        'backup downloaded',
      );
      audit(req, res, 'backup.download', {
        from: summary.from,
        to: summary.to,
        ids: options.ids?.length,
        datapoints: summary.datapoints,
        points: summary.points,
      });
    } catch (err) {
      audit(req, res, 'backup.download', { from: options.from, to: options.to }, err);
      if (!res.headersSent) {
        for (const h of ['Content-Disposition', 'Content-Encoding', 'Content-Type']) res.removeHeader(h);
        throw err;
      }
      // Mid-stream the status is sent: the connection is cut, and the file lacks its
      // trailer, so a restore refuses it rather than taking half a backup.
      deps.log.warn({ err: (err as Error).message, user: principal.name }, 'backup download aborted');
      res.destroy();
    }
  });

  r.post('/api/admin/restore', async (req, res) => {
    try {
      const { bytes, ...answer } = await restoreRequest(req, res);
      audit(req, res, 'backup.restore', {
        bytes,
        backupOf: answer.gateway,
        datapoints: answer.datapoints,
        points: answer.points,
        definitionsKept: answer.definitionsKept,
      });
      res.json(answer);
    } catch (err) {
      audit(req, res, 'backup.restore', {}, err);
      throw err;
    }
  });

  /** Checks, spools, verifies and restores an upload; answers nothing itself (the route records and answers). */
  const restoreRequest = async (req: Request, res: Response): Promise<HttpRestoreReport & { bytes: number }> => {
    const principal = requireAdmin(req, res);
    if (req.body !== undefined) {
      throw new OutpostError(
        'BAD_REQUEST',
        'send the backup file as the raw body (Content-Type: application/x-ndjson, application/gzip or application/octet-stream), not as JSON',
      );
    }
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxUpload) {
      // The rest of the body is not read: close the connection after the answer.
      res.setHeader('Connection', 'close');
      throw tooLarge(maxUpload);
    }
    if (restoring) throw new OutpostError('RESTORE_BUSY', 'a restore is already running; try again when it has finished');
    restoring = true;
    const spoolDir = join(deps.dataDir, 'tmp');
    const spool = join(spoolDir, `restore-${randomBytes(8).toString('hex')}.upload`);
    let answer: HttpRestoreReport & { bytes: number };
    try {
      await mkdir(spoolDir, { recursive: true });
      const limit = new ByteLimit(maxUpload);
      try {
        await pipeline(req, limit, createWriteStream(spool));
      } catch (err) {
        if (err instanceof OutpostError) res.setHeader('Connection', 'close');
        throw err;
      }
      let definitionsKept = 0;
      const report = await restore(deps.store, () => createReadStream(spool), {
        // A definition the running gateway already has stays as it is: its adapter owns it
        // and registers it again on every start anyway. New ones become known at once.
        register: async (dp) => {
          if (deps.registry.get(dp.id)) {
            definitionsKept++;
            return;
          }
          await deps.registry.register(dp);
        },
      });
      answer = { ...report, definitionsKept, bytes: limit.bytes };
      deps.log.info(
        { user: principal.name, bytes: limit.bytes, datapoints: report.datapoints, points: report.points, definitionsKept, backupOf: report.gateway },
        'backup restored',
      );
    } finally {
      // Removed before answering, so a client that sees the answer sees the disk space back.
      await rm(spool, { force: true });
      restoring = false;
    }
    return answer;
  };

  return r;
}
