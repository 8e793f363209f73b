import type { Stats } from 'node:fs';
import { copyFile, mkdir, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import type { Clock } from '../../core/clock.js';

export interface StableFile {
  path: string;
  name: string;
  size: number;
  mtimeMs: number;
}

export interface DropFolderOptions {
  dir: string;
  /** A file is read only once its size and mtime have not changed for this long. */
  stableMs: number;
  pollMs: number;
  clock: Clock;
  signal: AbortSignal;
  /** Imports one stable file; resolves when it has been moved away (or must be retried). */
  onStable(file: StableFile): Promise<void>;
  onError(err: unknown): void;
}

/** Names the watcher never picks up: hidden files, partial uploads and copies in progress. */
export function isCandidate(name: string): boolean {
  return !name.startsWith('.') && !name.startsWith('~$') && !/\.(tmp|part|partial|crdownload|filepart|error\.txt)$/i.test(name);
}

/**
 * Polls a drop folder. fs.watch is unreliable on network shares (SMB/NFS, where BMS
 * exports usually land) and says nothing about whether the writer has finished, so each
 * file must keep the same size and mtime for `stableMs` across polls before it is read.
 * Files are handled one at a time, oldest first.
 */
export class DropFolderWatcher {
  private readonly seen = new Map<string, { size: number; mtimeMs: number; since: number }>();
  private wake: (() => void) | undefined;
  /** A kick that arrived while polling: poll again straight away. */
  private kicked = false;

  constructor(private readonly o: DropFolderOptions) {}

  /** Polls now instead of at the next interval (after an upload is spooled). */
  kick(): void {
    this.kicked = true;
    this.wake?.();
  }

  async run(): Promise<void> {
    await mkdir(this.o.dir, { recursive: true });
    while (!this.o.signal.aborted) {
      try {
        await this.poll();
      } catch (err) {
        if (this.o.signal.aborted) return;
        this.o.onError(err);
      }
      if (this.o.signal.aborted) return;
      if (this.kicked) {
        this.kicked = false;
        continue;
      }
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.o.signal.removeEventListener('abort', done);
          this.wake = undefined;
          resolve();
        };
        const timer = setTimeout(done, this.o.pollMs);
        this.wake = done;
        this.o.signal.addEventListener('abort', done, { once: true });
      });
      this.kicked = false;
    }
  }

  private async poll(): Promise<void> {
    const now = this.o.clock.now();
    const entries = await readdir(this.o.dir, { withFileTypes: true });
    const present = new Set<string>();
    const ready: StableFile[] = [];
    for (const e of entries) {
      if (!e.isFile() || !isCandidate(e.name)) continue;
      const path = join(this.o.dir, e.name);
      let st: Stats;
      try {
        st = await stat(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // moved away meanwhile
        throw err;
      }
      present.add(e.name);
      const prev = this.seen.get(e.name);
      if (!prev || prev.size !== st.size || prev.mtimeMs !== st.mtimeMs) {
        this.seen.set(e.name, { size: st.size, mtimeMs: st.mtimeMs, since: now });
        if (this.o.stableMs > 0) continue;
      } else if (now - prev.since < this.o.stableMs) continue;
      ready.push({ path, name: e.name, size: st.size, mtimeMs: st.mtimeMs });
    }
    for (const name of this.seen.keys()) if (!present.has(name)) this.seen.delete(name);
    ready.sort((a, b) => a.mtimeMs - b.mtimeMs || a.name.localeCompare(b.name));
    for (const file of ready) {
      if (this.o.signal.aborted) return;
      // Re-check right before reading: the writer may have appended since the poll.
      const st = await stat(file.path).catch(() => undefined);
      if (!st || st.size !== file.size || st.mtimeMs !== file.mtimeMs) continue;
      await this.o.onStable(file);
      this.seen.delete(file.name);
    }
  }
}

/** Moves a file into `dir`, never overwriting: `name.csv` → `name.<time>.csv` on a clash. */
export async function moveInto(path: string, dir: string, now: number): Promise<string> {
  await mkdir(dir, { recursive: true });
  const name = basename(path);
  let target = join(dir, name);
  if (await exists(target)) {
    const ext = extname(name);
    const stamp = new Date(now).toISOString().replace(/[:.]/g, '-');
    target = join(dir, `${name.slice(0, name.length - ext.length)}.${stamp}${ext}`);
    for (let i = 1; await exists(target); i++) target = join(dir, `${name.slice(0, name.length - ext.length)}.${stamp}-${i}${ext}`);
  }
  try {
    await rename(path, target);
  } catch (err) {
    // The archive may be on another filesystem than the drop share.
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await copyFile(path, target);
    await unlink(path);
  }
  return target;
}

/** Moves a file to failed/ and writes `<name>.error.txt` beside it with the line and reason. */
export async function moveToFailed(path: string, failedDir: string, now: number, report: { line?: number; reason: string; source: string }): Promise<string> {
  const target = await moveInto(path, failedDir, now);
  const text = [
    `file: ${basename(path)}`,
    `source: ${report.source}`,
    `failed at: ${new Date(now).toISOString()}`,
    ...(report.line ? [`line: ${report.line}`] : []),
    `reason: ${report.reason}`,
    '',
  ].join('\n');
  await writeFile(`${target}.error.txt`, text);
  return target;
}

/** Whether `path` is there; errors other than ENOENT (a permission, a failing disk) are thrown. */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
