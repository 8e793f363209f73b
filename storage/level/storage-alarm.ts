import { statfs } from 'node:fs/promises';
import { OutpostError } from '../../core/errors.js';
import { directoryBytes } from '../directory-bytes.js';
import '../errors.js';
import type { SpaceReserve } from './space-reserve.js';

/** Room LevelDB needs to reopen beyond the size of its logs: a new manifest, a new log, table overhead. */
const REOPEN_MARGIN_BYTES = 1 << 20;

export interface StorageAlarmOptions {
  /** The LevelDB folder (its file system is the one that filled up). */
  path: string;
  /** How often recovery is tried while in the alarm state. */
  intervalMs: number;
  /** Closes and opens the database again, and reloads what the store keeps in memory. */
  reopen(): Promise<void>;
  /** Called when storage enters (error set) or leaves (undefined) the read-only state. */
  onAlarm?: (error: string | undefined) => void;
  /** The space reserve (storage/level/space-reserve.ts): while it is missing, recovery also waits for room to make it again. */
  reserve?: SpaceReserve;
}

/** Free and needed bytes on the database's file system, as last measured. */
export interface StorageRoom {
  free: number;
  needed: number;
}

/**
 * The read-only alarm state of a LevelStore: entered on any failed write (disk full, I/O
 * error), left only by reopening the database once there is room to.
 *
 * Why a reopen, not the next write that happens to succeed: after a failed write LevelDB's
 * log may end in a torn record, and LevelDB 1.20 goes on appending after it as if it were
 * whole. On the next open the log is read back in 32 KB blocks, and everything after the tear
 * in that log is dropped as corrupt: writes acknowledged (fsynced) after the disk had room
 * again were lost at the next restart (raw LevelDB puts on a full tmpfs: every one of 1,500 in
 * 3 of 6 trials; the store: 1,443 of 1,501, test/storage/full-disk-recovery.test.ts).
 * Opening again turns the log into a table first and starts a new log. It also clears a
 * background error: a compaction that failed for space makes LevelDB refuse every later
 * write until the database is opened again.
 *
 * Opening needs room for the log's contents as a table; with less, LevelDB fails to open,
 * so the alarm measures the free space first and waits (reads go on meanwhile).
 */
export class StorageAlarm {
  private state: { error: string; since: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private probing: Promise<void> | undefined;
  private stopped = false;
  /** The last measurement of a recovery that waited for space. */
  room: StorageRoom | undefined;

  constructor(private readonly o: StorageAlarmOptions) {}

  get readOnly(): boolean {
    return this.state !== undefined;
  }

  get error(): string | undefined {
    return this.state?.error;
  }

  /** Refuses a write while read-only (same code as a failed write: the client sends it again later). */
  check(): void {
    if (this.state)
      throw new OutpostError('STORAGE_WRITE_FAILED', `storage is read-only after a write error (${this.state.error}); writes resume once it recovers`);
  }

  /** A write failed: enter (or stay in) the alarm state and try to recover every intervalMs. */
  raise(error: string): void {
    if (!this.state) {
      this.state = { error, since: Date.now() };
      this.o.onAlarm?.(error);
    } else {
      this.state.error = error;
    }
    this.schedule();
  }

  /** Stops trying to recover; waits for a recovery under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.probing;
  }

  private schedule(): void {
    if (this.timer || this.probing || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.probing = this.recover().finally(() => {
        this.probing = undefined;
        if (this.state) this.schedule();
      });
    }, this.o.intervalMs);
    // The alarm alone keeps no process alive (a CLI tool that opened the store exits).
    this.timer.unref();
  }

  private async recover(): Promise<void> {
    if (!this.state || this.stopped) return;
    const room = await measure(this.o.path, this.o.reserve);
    this.room = room;
    if (room && room.free < room.needed) return;
    try {
      await this.o.reopen();
    } catch (err) {
      // Still read-only; the next attempt measures again.
      this.state.error = `reopening after a write error failed: ${(err as Error).message}`;
      return;
    }
    this.state = undefined;
    this.room = undefined;
    this.o.onAlarm?.(undefined);
  }
}

/** Free bytes on the database's file system and what reopening it needs; undefined when it cannot be measured. */
export async function measure(path: string, reserve?: SpaceReserve): Promise<StorageRoom | undefined> {
  try {
    const fs = await statfs(path);
    const logs = await directoryBytes(path, (name) => name.endsWith('.log'));
    // A reserve given up to open on a full disk is made again first; it is made only with room for twice its size.
    const remake = reserve && reserve.bytes > 0 && !(await reserve.present()) ? 2 * reserve.bytes : 0;
    return { free: fs.bavail * fs.bsize, needed: logs + REOPEN_MARGIN_BYTES + remake };
  } catch {
    // Unmeasurable (a file system without statfs, an unreadable directory): reopening is tried anyway.
    return undefined;
  }
}
