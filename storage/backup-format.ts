// The backup file format (header, lines, trailer) and the public types of backup and restore.
// Separate so the writer (backup.ts) and the reader (backup-reader.ts, backup-restore.ts) share
// one definition of the format without depending on each other.
import type { Readable } from 'node:stream';
import type { Datapoint } from '../core/datapoint.js';

/**
 * Backup and restore of the time series (datapoint definitions and raw points) as NDJSON:
 *
 *   {"format":"outpost-backup","version":1,"gateway":"site-1","createdAt":…,"from":null,"to":null}
 *   {"datapoint":{"id":"plant.meter1.power","adapter":"modbus",…}}        one per definition
 *   {"id":"plant.meter1.power","t":1763800000000,"v":230.1}                 one per point,
 *   {"id":"plant.meter1.power","t":1763800001000,"v":null,"q":"stale"}      per datapoint, by time
 *   {"end":"outpost-backup","datapoints":1,"points":2,"lines":4,"sha256":"…"}
 *
 * The trailer's `sha256` is the hash of every byte before it (each line with its `\n`),
 * so a truncated or edited file is refused. Rollups are not in the file: restore writes
 * through `Store.write`, which rebuilds them in the same batch as the points. The outbox,
 * broker state and users are not part of a backup, and restored points are not queued for
 * sync (`{ outbox: false }`): the original gateway synced them already.
 */
export const BACKUP_FORMAT = 'outpost-backup';
export const BACKUP_VERSION = 1;

/** A line longer than this is refused before it is parsed (a point's JSON value is at most 64 KiB). */
export const MAX_LINE_BYTES = 1024 * 1024;

export interface BackupOptions {
  /** Inclusive, epoch ms: points before are left out. */
  from?: number;
  /** Inclusive, epoch ms: points after are left out. */
  to?: number;
  /** Only these datapoints (definitions and points); default all. */
  ids?: readonly string[];
  /** Gateway id written into the header. */
  gateway?: string;
  /** Clock for `createdAt` (tests). */
  now?: () => number;
}

export interface BackupHeader {
  format: typeof BACKUP_FORMAT;
  version: typeof BACKUP_VERSION;
  gateway: string;
  createdAt: number;
  from: number | null;
  to: number | null;
}

export interface BackupSummary {
  gateway: string;
  createdAt: number;
  from: number | null;
  to: number | null;
  datapoints: number;
  points: number;
  /** Lines before the trailer (header, definitions, points). */
  lines: number;
  sha256: string;
}

export interface RestoreOptions {
  /**
   * Registers a datapoint definition. Default `store.putDatapoint`; a running gateway
   * passes its registry so the definition is known (and published) at once.
   */
  register?: (dp: Datapoint) => Promise<unknown>;
  /** Points per `store.write` (default 5000). */
  batch?: number;
}

export interface RestoreReport extends BackupSummary {
  /** True when the whole file was checked before anything was written (reopenable source). */
  verifiedFirst: boolean;
}

/** Where a backup comes from: a stream (one pass) or a function that opens it anew (verify, then write). */
export type BackupSource = Readable | (() => Readable);
