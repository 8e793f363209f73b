// Reading a backup back: `verifyBackup` (check only) and `restore` / `restoreFile` (check and
// write), with the BACKUP_INVALID errors that say how much was already restored. Separate from
// writing (backup.ts): the two directions share only the format (backup-format.ts).
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { OutpostError, isOutpostError } from '../core/errors.js';
import './errors.js';
import type { Datapoint } from '../core/datapoint.js';
import type { PointRecord, Store } from './store.js';
import type { BackupSource, BackupSummary, RestoreOptions, RestoreReport } from './backup-format.js';
import { LineError, decoded, splitLines } from './backup-lines.js';
import { BackupReader } from './backup-reader.js';

/** Points per `Store.write` on restore (one group commit each, bounded memory). */
const RESTORE_BATCH = 5000;

/**
 * Reads a whole backup without writing anything: header, every line, counts and checksum.
 * Resolves with the summary or rejects with BACKUP_INVALID naming the line.
 */
export async function verifyBackup(input: Readable): Promise<BackupSummary> {
  const reader = new BackupReader();
  let last = 0;
  try {
    for await (const line of splitLines(decoded(input))) {
      last = line.n;
      reader.accept(line);
    }
    reader.finish(last);
  } catch (err) {
    throw asBackupError(err, last, 0, 0);
  } finally {
    input.destroy();
  }
  return reader.summary();
}

/**
 * Restores a backup into `store`: definitions through `register` (default `putDatapoint`),
 * points through `store.write` in batches of `RESTORE_BATCH` (same (id, t) overwrites, so
 * restoring twice gives the same data).
 *
 * Given a function that opens the source anew (a file, a spooled upload), the whole file
 * is verified first and nothing is written unless it is intact. Given a one-shot stream,
 * lines are checked as they arrive and written batch by batch: on a bad line the error
 * says how many definitions and points before it were already written (the unwritten
 * batch is dropped), and a truncation is only found at the end. Either way, restoring a
 * good backup afterwards converges to the same data.
 */
export async function restore(store: Store, source: BackupSource, options: RestoreOptions = {}): Promise<RestoreReport> {
  let verifiedFirst = false;
  if (typeof source === 'function') {
    await verifyBackup(source());
    verifiedFirst = true;
  }
  const input = typeof source === 'function' ? source() : source;
  const register = options.register ?? ((dp: Datapoint) => store.putDatapoint(dp));
  const batchSize = Math.max(1, Math.min(options.batch ?? RESTORE_BATCH, 100_000));
  const reader = new BackupReader();
  let written = 0;
  let registered = 0;
  let batch: PointRecord[] = [];
  let last = 0;
  try {
    for await (const line of splitLines(decoded(input))) {
      last = line.n;
      const item = reader.accept(line);
      if (!item) continue;
      if (item.kind === 'datapoint') {
        await register(item.dp);
        registered++;
      } else if (item.kind === 'point') {
        batch.push(item.point);
        if (batch.length >= batchSize) {
          await store.write(batch, { outbox: false });
          written += batch.length;
          batch = [];
        }
      }
    }
    reader.finish(last);
    if (batch.length > 0) {
      await store.write(batch, { outbox: false });
      written += batch.length;
    }
  } catch (err) {
    throw asBackupError(err, last, registered, written);
  } finally {
    input.destroy();
  }
  return { ...reader.summary(), verifiedFirst };
}

/** Restores a backup file (gzip or plain, detected from its first bytes), verifying it completely first. */
export function restoreFile(store: Store, file: string, options: RestoreOptions = {}): Promise<RestoreReport> {
  return restore(store, () => createReadStream(file), options);
}

function asBackupError(err: unknown, lastLine: number, datapoints: number, points: number): unknown {
  const already =
    datapoints + points === 0
      ? 'nothing was restored'
      : `${datapoints} datapoint definition(s) and ${points} point(s) from the lines before were already restored (restoring a good backup overwrites them: restore is idempotent)`;
  if (err instanceof LineError) {
    return new OutpostError('BACKUP_INVALID', `backup refused at line ${err.line}: ${err.reason}; ${already}`, {
      details: { line: err.line, reason: err.reason, datapointsRestored: datapoints, pointsRestored: points },
    });
  }
  if (isOutpostError(err, 'BACKUP_INVALID')) {
    return new OutpostError('BACKUP_INVALID', `backup refused after line ${lastLine}: ${err.message}; ${already}`, {
      cause: err,
      details: { line: lastLine + 1, datapointsRestored: datapoints, pointsRestored: points },
    });
  }
  if (datapoints + points > 0 && isOutpostError(err)) {
    return new OutpostError(err.code, `${err.message} (${already})`, { cause: err, details: { datapointsRestored: datapoints, pointsRestored: points } });
  }
  return err;
}
