import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OutpostError } from '../../core/errors.js';
import '../../storage/errors.js'; // registers the STORAGE_* codes thrown here
import { writeJsonState } from '../durable-file.js';

/**
 * The drain position: every outbox record with seq <= `value` was acknowledged
 * upstream. Kept in `<dataDir>/sync/cursor.json`, replaced atomically (write temp,
 * fsync, rename, fsync dir) so a kill -9 leaves the old or the new value, never a torn
 * one. Writes are coalesced: at most one in flight, the latest value wins.
 */
export class DurableCursor {
  private current = 0;
  private persisted = 0;
  private writing: Promise<void> | undefined;
  private readonly file: string;

  constructor(private readonly dir: string) {
    this.file = join(dir, 'cursor.json');
  }

  async load(): Promise<number> {
    await mkdir(this.dir, { recursive: true });
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw new OutpostError('STORAGE_OPEN_FAILED', `cannot read sync cursor ${this.file}: ${(err as Error).message}`, { cause: err });
    }
    const parsed = JSON.parse(text) as { acked?: unknown };
    if (!Number.isSafeInteger(parsed.acked) || (parsed.acked as number) < 0) {
      throw new OutpostError('STORAGE_CORRUPT', `sync cursor ${this.file} holds no valid "acked" sequence; delete it to resend from the outbox start`);
    }
    this.current = this.persisted = parsed.acked as number;
    return this.current;
  }

  get value(): number {
    return this.current;
  }

  /** Raises the cursor (never lowers it) and persists it; resolves once durable. */
  async advance(seq: number): Promise<void> {
    if (seq <= this.current) return this.writing;
    this.current = seq;
    while (this.persisted < this.current) {
      if (!this.writing) {
        const target = this.current;
        this.writing = this.write(target)
          .then(() => {
            this.persisted = Math.max(this.persisted, target);
          })
          .finally(() => {
            this.writing = undefined;
          });
        await this.writing;
      } else {
        await this.writing;
      }
    }
  }

  private write(seq: number): Promise<void> {
    return writeJsonState(this.file, { acked: seq, at: new Date().toISOString() });
  }
}
