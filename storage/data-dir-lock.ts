import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Level } from 'level';
import { OutpostError } from '../core/errors.js';
import './errors.js';

/**
 * Who holds a data directory: the running gateway writes its pid to `<dataDir>/outpost.pid` at
 * start and removes it at a graceful stop, and holds LevelDB's LOCK while its database is open.
 * The offline tools (`outpost repair`, `backup`, `restore`) check both before they touch the
 * database: LevelDB's repair takes no lock at all, and run against a live gateway's database it
 * left one that did not open, with acknowledged readings lost. The pid file covers the times the
 * gateway runs without holding the LOCK (waiting for room on a full disk, reopening after a
 * write error); the LOCK covers a gateway whose pid file could not be written (a full disk).
 */
export const PID_FILE = 'outpost.pid';

/** Writes this process's pid; returns false (and why) when it could not (a full disk). */
export async function writePidFile(dataDir: string): Promise<{ ok: true } | { ok: false; reason: string }> {
  const file = join(dataDir, PID_FILE);
  try {
    await writeFile(file, `${process.pid}\n`);
    return { ok: true };
  } catch (err) {
    // An empty file (created, then no room for the pid) names nobody: removed so it is not left behind.
    const removed = await rm(file, { force: true }).then(
      () => '',
      (rmErr: Error) => `; ${file} not removed: ${rmErr.message}`,
    );
    return { ok: false, reason: `${(err as Error).message}${removed}` };
  }
}

/** Removes the pid file if it is this process's (a later start may have written its own). */
export async function removePidFile(dataDir: string): Promise<void> {
  if ((await pidIn(join(dataDir, PID_FILE))) === process.pid) await rm(join(dataDir, PID_FILE), { force: true });
}

/** The pid of the process named in the pid file, if that process is alive (a SIGKILLed gateway leaves a stale file). */
export async function runningGateway(dataDir: string): Promise<number | undefined> {
  const pid = await pidIn(join(dataDir, PID_FILE));
  if (pid === undefined || pid === process.pid) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (err) {
    // EPERM: alive, owned by another user (the service account). ESRCH: gone, the file is stale.
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
  }
}

async function pidIn(file: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const pid = Number(text.trim());
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * Refuses (STORAGE_IN_USE) when a running gateway holds the data directory of the database at
 * `dbPath` (`<dataDir>/db`): its pid file names a live process, or LevelDB's LOCK is held.
 * `command` (`outpost backup`, …) chooses the hint in the message.
 */
export async function assertNotInUse(dbPath: string, command: string): Promise<void> {
  const dataDir = basename(dbPath) === 'db' ? dirname(dbPath) : undefined;
  const pid = dataDir ? await runningGateway(dataDir) : undefined;
  if (pid !== undefined) {
    throw new OutpostError(
      'STORAGE_IN_USE',
      `${dataDir} is in use: stop the gateway first (pid ${pid} runs on it)${hint(command)}; if no gateway runs, remove ${join(dataDir!, PID_FILE)}`,
      {
        details: { pid, dataDir },
      },
    );
  }
  if (await lockHeld(dbPath)) {
    throw new OutpostError('STORAGE_IN_USE', `the database ${dbPath} is in use: stop the gateway first (another process holds its LOCK)${hint(command)}`, {
      details: { path: dbPath },
    });
  }
}

function hint(command: string): string {
  if (command.endsWith('backup')) return ', or use GET /api/admin/backup of the running gateway';
  if (command.endsWith('restore')) return ', or use POST /api/admin/restore of the running gateway';
  return '';
}

/**
 * Whether another process holds LevelDB's LOCK on `dbPath`, found by opening the database
 * (LevelDB takes the lock first; a missing or damaged database is not locked by anyone).
 */
async function lockHeld(dbPath: string): Promise<boolean> {
  // No database yet (a restore into a new data dir): nobody holds it, and opening would create the folder.
  if (!existsSync(join(dbPath, 'CURRENT'))) return false;
  const db = new Level(dbPath, { createIfMissing: false });
  try {
    await db.open();
  } catch (err) {
    return isLockedError(err);
  }
  await db.close();
  return false;
}

/**
 * True when an open failed because LevelDB's LOCK is held (classic-level: LEVEL_LOCKED, `IO error:
 * lock …/LOCK: Resource temporarily unavailable`, or `already held by process` in this one). Not
 * any error naming the LOCK file: a missing folder fails with `…/LOCK: No such file or directory`.
 */
export function isLockedError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { code?: string }).code === 'LEVEL_LOCKED') return true;
    if (/\block \S*LOCK: (Resource temporarily unavailable|already held)/i.test((e as Error).message ?? '')) return true;
  }
  return false;
}
