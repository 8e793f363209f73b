import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { OutpostError } from '../../core/errors.js';
import { writeFileDurably } from '../durable-file.js';

/**
 * What `outpost api` needs to reach the running gateway as a local admin: the URL to call,
 * the token, and the certificate to pin when the API is served over TLS.
 */
export interface LocalAccess {
  url: string;
  token: string;
  /** PEM certificate file of `http.tls`: the CLI trusts exactly this one. */
  certFile?: string;
  pid: number;
}

/** `<dataDir>/auth/local-access.json`, readable only by the user the gateway runs as. */
export function localAccessPath(dataDir: string): string {
  return join(dataDir, 'auth', 'local-access.json');
}

/**
 * The credential of tools on the gateway's own host (issue 18). Loopback alone proves
 * nothing: a reverse proxy or a TCP forwarder on this host makes every stranger arrive
 * from 127.0.0.1. A file only the service user can read does prove it: whoever presents
 * its token could read the data dir, and so could read the database anyway. A new token
 * is made at every start; the file is removed on a graceful stop.
 */
export class LocalAccessToken {
  private readonly token = randomBytes(32).toString('base64url');
  private readonly tokenBytes = Buffer.from(this.token);

  constructor(private readonly dataDir: string) {}

  /** The token presented as `Authorization: Bearer <token>` matches this process's one. */
  matches(candidate: string): boolean {
    const given = Buffer.from(candidate);
    return given.length === this.tokenBytes.length && timingSafeEqual(given, this.tokenBytes);
  }

  /** Writes the access file (mode 0600 in a 0700 folder) once the HTTP server listens. */
  async publish(url: string, certFile?: string): Promise<void> {
    const file = localAccessPath(this.dataDir);
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    // mkdir leaves an existing folder's mode alone: older installs made it 0755.
    await chmod(dirname(file), 0o700);
    const access: LocalAccess = { url, token: this.token, ...(certFile ? { certFile } : {}), pid: process.pid };
    await writeFileDurably(file, JSON.stringify(access), { mode: 0o600 });
  }

  /** Removes the file, if it is still this process's (a newer gateway may have replaced it). */
  async withdraw(): Promise<void> {
    const file = localAccessPath(this.dataDir);
    const current = await readLocalAccess(this.dataDir).catch(() => undefined);
    if (current?.token === this.token) await rm(file, { force: true });
  }
}

/** Reads the access file for `outpost api`; a clear error when there is no running gateway. */
export async function readLocalAccess(dataDir: string): Promise<LocalAccess> {
  const file = localAccessPath(dataDir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new OutpostError('NOT_FOUND', `${file} does not exist: is the gateway running with this data dir?`, { cause: err });
    if (code === 'EACCES') throw new OutpostError('FORBIDDEN', `${file} is not readable: run as the user the gateway runs as`, { cause: err });
    throw err;
  }
  let parsed: Partial<LocalAccess>;
  try {
    parsed = JSON.parse(text) as Partial<LocalAccess>;
  } catch (err) {
    throw new OutpostError('BAD_REQUEST', `${file} is not valid JSON`, { cause: err });
  }
  if (typeof parsed.url !== 'string' || typeof parsed.token !== 'string') throw new OutpostError('BAD_REQUEST', `${file} has no url or token`);
  return { url: parsed.url, token: parsed.token, certFile: typeof parsed.certFile === 'string' ? parsed.certFile : undefined, pid: Number(parsed.pid) };
}
