import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Bytes the files of a directory take on disk (the files, not LevelDB's estimate), optionally
 * only those whose name `accept`s. LevelDB's compaction removes files while this runs; a file
 * gone between the listing and its stat takes no room any more and is left out.
 */
export async function directoryBytes(dir: string, accept: (name: string) => boolean = () => true): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isFile() || !accept(entry.name)) continue;
    total += await fileBytes(join(dir, entry.name));
  }
  return total;
}

async function fileBytes(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}
