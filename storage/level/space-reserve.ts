import { open, rename, rm, stat, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Written in pieces so that making the reserve never holds more than this in memory. */
const PIECE_BYTES = 1 << 20;

/**
 * A file of zeros kept next to the database, given up when the disk is full at start.
 *
 * Why: LevelDB cannot open on a full disk (opening writes its log out as a table and a new
 * manifest: `IO error: …/000005.ldb: No space left on device`), so a gateway started on a full
 * disk could serve nothing, not even the readings it already holds. Deleting the reserve gives
 * the open the room it needs; the store then stays read-only until the disk has room for the
 * reserve again (storage/level/storage-alarm.ts), so the reserve is there for the next time.
 *
 * Made only while there is room for twice its size: a reserve must never be what fills the disk.
 */
export class SpaceReserve {
  constructor(
    readonly path: string,
    readonly bytes: number,
  ) {}

  /** True when the reserve is on disk at its full size. */
  async present(): Promise<boolean> {
    try {
      return (await stat(this.path)).size >= this.bytes;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** Makes the reserve when it is missing and the disk has room; returns whether it is there. */
  async ensure(): Promise<boolean> {
    if (this.bytes === 0) return false;
    if (await this.present()) return true;
    const fs = await statfs(dirname(this.path));
    if (fs.bavail * fs.bsize < 2 * this.bytes) return false;
    const partial = `${this.path}.partial`;
    const file = await open(partial, 'w', 0o600);
    try {
      const zeros = Buffer.alloc(Math.min(PIECE_BYTES, this.bytes));
      for (let written = 0; written < this.bytes; ) {
        const n = Math.min(zeros.length, this.bytes - written);
        await file.write(zeros, 0, n);
        written += n;
      }
      // Zeros written (not a sparse file): the blocks are really taken, so deleting gives them back.
      await file.sync();
    } catch (err) {
      await file.close();
      await rm(partial, { force: true });
      if (isNoRoom(err)) return false;
      throw err;
    }
    await file.close();
    await rename(partial, this.path);
    return true;
  }

  /** Deletes the reserve; returns whether there was one to give up. */
  async release(): Promise<boolean> {
    const had = await this.present();
    await rm(this.path, { force: true });
    await rm(`${this.path}.partial`, { force: true });
    return had;
  }
}

/** True when a failure (or its message, or a cause's) says the file system has no room or takes no writes. */
export function isNoRoom(err: unknown): boolean {
  const noRoom = /ENOSPC|No space left on device|EDQUOT|Disk quota exceeded|EROFS|Read-only file system/i;
  if (typeof err === 'string') return noRoom.test(err);
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (noRoom.test(`${(e as { code?: string }).code ?? ''} ${(e as Error).message ?? ''}`)) return true;
  }
  return false;
}
