import { open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { OutpostError } from '../core/errors.js';
import '../storage/errors.js'; // registers the STORAGE_* codes thrown here

/**
 * Small state files that must survive kill -9 and power loss (sync cursors, replay
 * counters, import journals, schedules): written to a temp file, fsynced, renamed over the
 * old one, then the directory fsynced, so after a crash the file is either the old or the
 * new version, never a mix or empty.
 */
export async function writeFileDurably(path: string, data: string | Buffer, options: { mode?: number } = {}): Promise<void> {
  // Per process: the CLI (`outpost users …`) and a running gateway may write the same file.
  const tmp = `${path}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w', options.mode ?? 0o666);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}

/** Makes a rename or file creation in `dir` durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function writeJsonState(file: string, value: unknown): Promise<void> {
  return writeFileDurably(file, JSON.stringify(value));
}

/** A JSON state file, or `fallback` when there is none yet; a damaged one is an error, never silently reset. */
export async function readJsonState<T>(file: string, fallback: T): Promise<T> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fallback;
    throw err;
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new OutpostError('STORAGE_OPEN_FAILED', `${file} is not valid JSON; refusing to reset it silently`, { cause: err });
  }
}
