import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Request, Response, Router } from 'express';
import busboy from 'busboy';
import { OutpostError, toOutpostError } from '../../runtime/errors.js';
import { verifyToken } from '../../runtime/auth/passwords.js';
import type { Logger } from '../../runtime/log.js';
import { fsyncDir } from '../../runtime/durable-file.js';

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
 * so the result can never address anything outside the spool directory.
 */
export function sanitizeFilename(raw: string | undefined): string {
  const base = (raw ?? '').split(/[/\\]/).pop() ?? '';
  const clean = base
    .normalize('NFKC')
    .replace(/[^A-Za-z0-9._-]+/g, '_')
    .replace(/^[._]+/, '')
    .slice(-100);
  return clean.length > 0 && clean !== '_' ? clean : 'upload.csv';
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
  res.status(status).type('text/plain').send(status === 200 ? text : `${text}\n`);
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
      finalName = `${id}-${sanitizeFilename(info.filename)}`;
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
    if (partPath) await unlink(partPath).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') o.log.warn({ err: err.message, partPath }, 'could not remove partial upload'); });
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
  await rename(partPath, finalPath);
  await fsyncDir(o.spoolDir);
  send(res, 200, 'OK');
  o.log.info({ file: finalName }, 'upload spooled');
  o.onSpooled(finalPath);
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
