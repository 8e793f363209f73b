import { join } from 'node:path';
import { readJsonState, writeJsonState } from '../../runtime/durable-file.js';

/**
 * MO message numbers (the `seq` in codec.ts headers, the central side's idempotency key),
 * kept in `<dataDir>/mo-seq.json`. A number is consumed durably before the message that
 * carries it is sent, one writer at a time, so a restart never reuses one.
 */
export class MoSeq {
  private writing: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly file: string,
    private next: number,
  ) {}

  static async open(dataDir: string): Promise<MoSeq> {
    const file = join(dataDir, 'mo-seq.json');
    return new MoSeq(file, (await readJsonState<{ seq: number }>(file, { seq: 0 })).seq);
  }

  /** The number the next message will carry (not consumed). */
  get current(): number {
    return this.next;
  }

  /** Consumes the next number; resolves once it is on disk. */
  take(): Promise<number> {
    const run = this.writing.then(async () => {
      const seq = this.next++;
      await writeJsonState(this.file, { seq: this.next });
      return seq;
    });
    this.writing = run.catch(() => undefined); // a failed write fails its own caller only
    return run;
  }
}
