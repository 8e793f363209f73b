import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileDurably } from '../../runtime/durable-file.js';

/** Files whose attempts are remembered at most (oldest forgotten first). */
const MAX_FILES = 200;

/**
 * Import attempts per file version, written before each import starts and cleared when it ends
 * (imported or refused). An attempt that never ended is one where the gateway died importing:
 * a file that kills the process (out of memory, a crash in a parser) would otherwise be
 * resumed at every restart and kill it again, a crash loop a supervisor cannot break. After
 * `max` unfinished attempts the file is quarantined (moved to failed/ with the reason). A
 * graceful stop gives its attempt back. `<dataDir>/adapters/<id>/import-attempts.json`.
 */
export class ImportAttempts {
  private state: Record<string, number> = {};
  readonly path: string;

  constructor(
    dir: string,
    readonly max = 3,
  ) {
    this.path = join(dir, 'import-attempts.json');
  }

  async load(): Promise<void> {
    try {
      const parsed = JSON.parse(await readFile(this.path, 'utf8')) as unknown;
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
        for (const [k, v] of Object.entries(parsed)) if (Number.isSafeInteger(v)) this.state[k] = v as number;
      }
    } catch (err) {
      // Missing: nothing was ever attempted. Unreadable (torn): counting starts afresh, which
      // costs at most `max` more attempts of a bad file.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && !(err instanceof SyntaxError)) throw err;
    }
  }

  /** Attempts that never ended for this file version. */
  unfinished(key: string): number {
    return this.state[key] ?? 0;
  }

  /** An import of this version starts: counted durably before any work. */
  async begin(key: string): Promise<void> {
    this.state[key] = (this.state[key] ?? 0) + 1;
    const keys = Object.keys(this.state);
    if (keys.length > MAX_FILES) delete this.state[keys[0]!];
    await this.persist();
  }

  /** It ended (imported, refused, or stopped gracefully): not an unfinished attempt. */
  async end(key: string, graceful = false): Promise<void> {
    if (!(key in this.state)) return;
    if (graceful && this.state[key]! > 1) this.state[key]!--;
    else delete this.state[key];
    await this.persist();
  }

  private async persist(): Promise<void> {
    await writeFileDurably(this.path, JSON.stringify(this.state));
  }
}

/** The identity of a file version: path, size and mtime (an edited file starts counting afresh). */
export function versionKey(file: { path: string; size: number; mtimeMs: number }): string {
  return `${file.path}|${file.size}|${Math.round(file.mtimeMs)}`;
}
