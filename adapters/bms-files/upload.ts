import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import type { Request, Response, Router } from 'express';
import busboy from 'busboy';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import { verifyToken } from '../../runtime/auth/passwords.js';
import type { Logger } from '../../runtime/log.js';
import { fsyncDir, writeFileDurably } from '../../runtime/durable-file.js';
import { exists, isCandidate } from './watcher.js';

export interface UploadOptions {
  path: string;
  /** `sha256:<hex>` hashes (runtime/auth/passwords.ts hashToken). */
  tokenHashes: readonly string[];
  maxBytes: number;
  spoolDir: string;
  /** Refuse with 503 while this many uploads wait to be imported (bounded spool). */
  maxQueued: number;
  queued(): number;
  log: Logger;
  /** Called once the file is durable in the spool. */
  onSpooled(path: string): void;
}

/** Multipart framing and small form fields on top of the file itself. */
const MULTIPART_OVERHEAD = 64 * 1024;

/**
 * Keeps only a harmless base name: no directories (either slash), no leading dots, no
 * control or shell-special characters, bounded length. The spool name adds a unique prefix,
 * so the result can never address anything outside the spool directory. Only for names on
 * disk: the name shown to people is `displayFilename`.
 */
export function sanitizeFilename(raw: string | undefined): string {
  const base = (raw ?? '').split(/[/\\]/).pop() ?? '';
  const clean = base
    // Accents dropped rather than replaced (`März` → `Marz`, not `M_rz`): readable in archive/.
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^A-Za-z0-9._-]+/g, '_')
    .replace(/^[._]+/, '')
    .slice(-100);
  return clean.length > 0 && clean !== '_' ? clean : 'upload.csv';
}

/** Longest original name kept (characters); longer ones keep their start and extension. */
const MAX_DISPLAY_NAME = 200;

/**
 * The file name as the client sent it, for the history and status (never for a path):
 * - bytes decoded as UTF-8: browsers, curl and Node's fetch send the raw UTF-8 bytes of
 *   the name in `filename="…"` (WHATWG HTML multipart/form-data encoding) and busboy
 *   reads them as Latin-1 by default; a name whose bytes are not valid UTF-8 (an old
 *   script sending Windows-1252) stays Latin-1. RFC 5987 `filename*=UTF-8''…` arrives
 *   decoded (characters over U+00FF) and is kept;
 * - base name only (old IE sends `C:\Users\…\report.csv`);
 * - control characters (C0, DEL, C1) and bidirectional overrides removed: a name shown in
 *   a table must not move text around (U+202E before `vsc.exe` shows `report<U+202E>vsc.exe` as `reportexe.csv`);
 * - at most `MAX_DISPLAY_NAME` characters, keeping the extension.
 */
export function displayFilename(raw: string | undefined): string {
  let name = raw ?? '';
  if (!/[^\u0000-\u00ff]/.test(name)) {
    const bytes = Buffer.from(name, 'latin1');
    try {
      name = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch (err) {
      // Not UTF-8 (fatal decoder, TypeError): the Latin-1 reading is the best there is.
      if (!(err instanceof TypeError)) throw err;
    }
  }
  name = (name.split(/[/\\]/).pop() ?? '').replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '').trim();
  const chars = [...name];
  if (chars.length > MAX_DISPLAY_NAME) {
    const ext = [...extname(name)].slice(0, 16).join('');
    name = chars.slice(0, MAX_DISPLAY_NAME - ext.length - 1).join('') + '…' + ext;
  }
  return name.length > 0 ? name : 'upload.csv';
}

/**
 * Our own name for an upload in the spool: `<ms>-<hex8>-<safe name>.csv`. The client's name
 * only contributes a sanitised, readable part for people browsing archive/ and failed/; the
 * name always ends in `.csv`, so no client name (`report.csv.part`, `x.tmp`, `y.error.txt`)
 * can make it one the spool watcher skips (watcher.ts isCandidate), which left such uploads
 * in the spool forever, counted against `maxQueued` (503 for every upload after 100).
 */
export function spoolName(id: string, clientName: string | undefined): string {
  const safe = sanitizeFilename(clientName);
  return `${id}-${/\.csv$/i.test(safe) ? safe : `${safe}.csv`}`;
}

/** Hidden (the watcher skips dot files) record of the original name beside a spooled upload. */
function sidecarPath(spoolPath: string): string {
  return join(dirname(spoolPath), `.${basename(spoolPath)}.name.json`);
}

/** What the spool prefix hides of an on-disk name (uploads spooled before sidecars existed). */
const SPOOL_PREFIX = /^\d{10,}-[0-9a-f]{8}-/;

/**
 * The name the client uploaded the spooled file at `spoolPath` as (`displayFilename`),
 * from its sidecar; call it before the file is moved to archive/ or failed/. Without a
 * sidecar (spooled by an older version) or with an unreadable one: the on-disk name
 * without the spool prefix, as before.
 */
export async function originalName(spoolPath: string): Promise<string> {
  const fallback = basename(spoolPath).replace(SPOOL_PREFIX, '');
  let text: string;
  try {
    text = await readFile(sidecarPath(spoolPath), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fallback;
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    // Written durably (temp file, fsync, rename), so only a hand edit damages it: show the disk name.
    if (err instanceof SyntaxError) return fallback;
    throw err;
  }
  const name = (parsed as { name?: unknown } | null)?.name;
  return typeof name === 'string' && name.length > 0 ? name : fallback;
}

/** Removes the sidecar of a spooled upload once it has been archived or refused (its name is in the history). */
export async function forgetOriginalName(spoolPath: string): Promise<void> {
  await unlink(sidecarPath(spoolPath)).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

/**
 * Uploads waiting in the spool at start: regular files the watcher will import, not the
 * `archive/` and `failed/` folders (counted as two queued uploads after every restart, and
 * never taken off) nor `.part` files and sidecars. Removes sidecars whose upload is gone (a
 * crash between the import and `forgetOriginalName`, or mid-upload after the sidecar).
 */
export async function listSpooled(spoolDir: string): Promise<string[]> {
  const entries = await readdir(spoolDir, { withFileTypes: true });
  await sweepSidecars(
    spoolDir,
    entries.map((e) => e.name),
  );
  return entries
    .filter((e) => e.isFile() && isCandidate(e.name))
    .map((e) => join(spoolDir, e.name))
    .sort();
}

const SIDECAR = /^\.(.+)\.name\.json$/;

/** Removes sidecars whose upload is neither waiting nor still arriving (`.part`). */
async function sweepSidecars(spoolDir: string, names: readonly string[]): Promise<void> {
  const present = new Set(names);
  for (const name of names) {
    const upload = SIDECAR.exec(name)?.[1];
    if (upload === undefined || present.has(upload) || present.has(`${upload}.part`)) continue;
    // Asked again: a listing taken during a rename from `.part` may show neither name.
    if ((await exists(join(spoolDir, upload))) || (await exists(join(spoolDir, `${upload}.part`)))) continue;
    await forgetOriginalName(join(spoolDir, upload));
  }
}

function bearer(req: Request): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  return m?.[1];
}

/**
 * `POST <path>` with a multipart field `file` (as the existing BMS upload scripts send
 * it). Authenticated by `Authorization: Bearer <token>`, or for old scripts a `token`
 * query parameter or form field. The file streams to `<spool>/<unique>.part`, is fsynced
 * and renamed; only then the answer is `OK` (text/plain), and parsing happens afterwards
 * from the spool. Over `maxBytes` the upload is cut off with 413 and nothing is kept.
 */
export function mountUpload(router: Router, o: UploadOptions): void {
  router.post(o.path, (req, res) => {
    handle(req, res, o).catch((err) => {
      const e = toOutpostError(err);
      if (e.status >= 500) o.log.error({ err, code: e.code }, 'upload failed');
      send(res, e.status, e.message);
    });
  });
}

function send(res: Response, status: number, text: string, close = false): void {
  if (res.headersSent) return;
  if (close) res.setHeader('Connection', 'close');
  res
    .status(status)
    .type('text/plain')
    .send(status === 200 ? text : `${text}\n`);
}

async function handle(req: Request, res: Response, o: UploadOptions): Promise<void> {
  const headerToken = bearer(req) ?? (typeof req.query.token === 'string' ? req.query.token : undefined);
  let authenticated = headerToken !== undefined && verifyToken(headerToken, o.tokenHashes);
  if (headerToken !== undefined && !authenticated) return reject(req, res, 401, 'invalid upload token');
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > o.maxBytes + MULTIPART_OVERHEAD) {
    return reject(req, res, 413, `upload of ${declared} bytes is over the limit of ${o.maxBytes} bytes`);
  }
  if (o.queued() >= o.maxQueued) return reject(req, res, 503, `${o.queued()} uploads are waiting to be imported; try again later`);

  let bb: busboy.Busboy;
  try {
    bb = busboy({ headers: req.headers, limits: { files: 1, fileSize: o.maxBytes, fields: 8, fieldSize: 4096, parts: 16 } });
  } catch (err) {
    return reject(req, res, 400, `expected a multipart/form-data upload with a "file" field (${(err as Error).message})`);
  }

  const id = `${Date.now()}-${randomBytes(4).toString('hex')}`;
  let partPath: string | undefined;
  let finalName: string | undefined;
  let shownName = 'upload.csv';
  let out: WriteStream | undefined;
  let written: Promise<void> | undefined;
  let tooLarge = false;
  let failed: Error | undefined;

  const done = new Promise<void>((resolve, reject) => {
    bb.on('field', (name, value) => {
      if (name === 'token' && !authenticated) authenticated = verifyToken(value, o.tokenHashes);
    });
    bb.on('file', (name, stream, info) => {
      if (name !== 'file' || out) {
        stream.resume(); // not ours: discard without keeping it
        return;
      }
      shownName = displayFilename(info.filename);
      finalName = spoolName(id, shownName);
      partPath = join(o.spoolDir, `${finalName}.part`);
      const ws = createWriteStream(partPath, { flags: 'wx' });
      out = ws;
      stream.on('limit', () => {
        tooLarge = true;
        stream.unpipe(ws);
        stream.resume();
        ws.destroy();
        req.unpipe(bb);
        resolve();
      });
      written = new Promise<void>((res2, rej2) => {
        ws.on('close', res2);
        ws.on('error', rej2);
      });
      stream.pipe(ws);
    });
    bb.on('close', resolve);
    bb.on('error', (err) => {
      failed = err as Error;
      reject(err);
    });
    req.on('aborted', () => reject(new OutpostError('BAD_REQUEST', 'client aborted the upload')));
  });
  req.pipe(bb);

  const cleanup = async (): Promise<void> => {
    out?.destroy();
    await written?.catch(() => undefined);
    if (partPath)
      await unlink(partPath).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') o.log.warn({ err: err.message, partPath }, 'could not remove partial upload');
      });
  };

  try {
    await done;
  } catch (err) {
    await cleanup();
    if (failed) return reject(req, res, 400, `malformed multipart body: ${failed.message}`);
    throw err;
  }
  if (tooLarge) {
    await cleanup();
    return reject(req, res, 413, `file is over the limit of ${o.maxBytes} bytes`);
  }
  if (!out || !partPath || !finalName) return reject(req, res, 400, 'missing multipart field "file"');
  await written;
  if (!authenticated) {
    await cleanup();
    return reject(req, res, 401, 'upload token required: Authorization: Bearer <token> (or a token field)');
  }
  // Durable before we say OK: fsync the data, rename into place, fsync the directory.
  const fh = await open(partPath, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  const finalPath = join(o.spoolDir, finalName);
  try {
    // The original name first: once the upload is in place the watcher may take it at once.
    await writeFileDurably(sidecarPath(finalPath), JSON.stringify({ name: shownName }));
    await rename(partPath, finalPath);
  } catch (err) {
    await cleanup();
    await forgetOriginalName(finalPath);
    throw err;
  }
  await fsyncDir(o.spoolDir);
  send(res, 200, 'OK');
  o.log.info({ file: finalName, name: shownName }, 'upload spooled');
  o.onSpooled(finalPath);
  // Sidecars of uploads imported since (a safety net: the importer removes them itself with
  // forgetOriginalName); the spool holds only waiting uploads, so this is one short readdir.
  await readdir(o.spoolDir)
    .then((names) => sweepSidecars(o.spoolDir, names))
    .catch((err: Error) => o.log.warn({ err: err.message, spoolDir: o.spoolDir }, 'could not remove old upload name records'));
}

/**
 * Answers an error without reading the rest of a possibly huge body into memory: the
 * remainder is discarded as it arrives (so the client can read the answer instead of
 * seeing a reset) and the connection is closed afterwards; a client that keeps sending
 * far beyond the limit is cut off.
 */
function reject(req: Request, res: Response, status: number, text: string): void {
  send(res, status, text, true);
  if (req.complete) return;
  req.unpipe();
  let discarded = 0;
  const cutoff = setTimeout(() => req.socket.destroy(), 30_000);
  cutoff.unref();
  req.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > 512 * 1024 * 1024) req.socket.destroy();
  });
  req.on('end', () => clearTimeout(cutoff));
  req.on('close', () => clearTimeout(cutoff));
  req.resume();
}
