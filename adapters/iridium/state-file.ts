import { open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { OutpostError } from '../../runtime/errors.js';

/**
 * A small JSON state file written atomically and durably (temp file, fsync, rename,
 * fsync of the directory), so a counter survives kill -9 and power loss: the MT replay
 * counter must never go backwards.
 */
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

export async function writeJsonState(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(JSON.stringify(value));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  const dir = await open(dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
