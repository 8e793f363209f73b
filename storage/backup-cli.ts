import { join, resolve } from 'node:path';
import { stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { OutpostError } from '../core/errors.js';
import './errors.js';
import { LevelStore } from './level/level-store.js';
import { assertNotInUse, isLockedError } from './data-dir-lock.js';
import { backupToFile, restoreFile } from './backup.js';

/** `--from` / `--to` on the command line: epoch ms or an ISO 8601 date. */
function parseTimeArg(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const n = /^\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
  if (!Number.isFinite(n) || n < 0)
    throw new OutpostError('BAD_REQUEST', `--${name} must be epoch milliseconds or an ISO 8601 date (2025-01-31T00:00:00Z), got "${raw}"`);
  return n;
}

/**
 * Opens the gateway's store for an offline tool. A running gateway (its pid file, or the
 * LevelDB LOCK it holds) means refusal: two writers would corrupt the database, and a backup
 * of a database being written is no image of anything (storage/data-dir-lock.ts).
 */
async function openOffline(dataDir: string, command: string, sync = true, mustExist = false): Promise<LevelStore> {
  const path = join(resolve(dataDir), 'db');
  await assertNotInUse(path, command);
  // Opening creates an empty database: a mistyped data dir would give an empty backup.
  if (mustExist && !existsSync(join(path, 'CURRENT'))) {
    throw new OutpostError('STORAGE_OPEN_FAILED', `there is no database at ${path}: check -c / --data-dir (the gateway keeps its data in <dataDir>/db)`);
  }
  const store = new LevelStore({ path, sync });
  try {
    await store.open();
  } catch (err) {
    // A gateway that started between the check and this open holds the LOCK now.
    if (isLockedError(err)) await assertNotInUse(path, command);
    throw err;
  }
  return store;
}

export interface BackupCommand {
  dataDir: string;
  gateway: string;
  out: string;
  from?: string;
  to?: string;
}

/** `outpost backup`: writes the file and returns the line to print. */
export async function backupCommand(c: BackupCommand): Promise<string> {
  const from = parseTimeArg('from', c.from);
  const to = parseTimeArg('to', c.to);
  const store = await openOffline(c.dataDir, 'outpost backup', true, true);
  try {
    const s = await backupToFile(store, c.out, { from, to, gateway: c.gateway });
    return `backup written to ${c.out}: ${s.datapoints} datapoint(s), ${s.points} point(s), sha256 ${s.sha256}`;
  } finally {
    await store.close();
  }
}

/** `outpost restore FILE`: verifies the whole file, then writes; returns the line to print. */
export async function restoreCommand(c: { dataDir: string; file: string; sync?: boolean }): Promise<string> {
  try {
    await stat(c.file);
  } catch (err) {
    throw new OutpostError('BACKUP_INVALID', `cannot read ${c.file}: ${(err as Error).message}`, { cause: err });
  }
  const store = await openOffline(c.dataDir, 'outpost restore', c.sync);
  try {
    const r = await restoreFile(store, c.file);
    return `restored ${c.file} (gateway "${r.gateway}", taken ${new Date(r.createdAt).toISOString()}): ${r.datapoints} datapoint(s), ${r.points} point(s)`;
  } finally {
    await store.close();
  }
}
