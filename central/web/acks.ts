import { readFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import { OutpostError } from '../../core/errors.js';
import { writeFileDurably } from '../../runtime/durable-file.js';

/** One acknowledgement given at central: of the raise at `raisedAt` of a gateway's alarm. */
export interface CentralAck {
  gateway: string;
  /** The alarm's id (its datapoint is `alarm.<id>`). */
  alarm: string;
  /** The raise acknowledged: a later raise of the same alarm is not acknowledged by this. */
  raisedAt: number;
  /** Who acknowledged it, as the audit trail names them (`user alice`). */
  by: string;
  at: number;
}

const AckFile = z.strictObject({
  version: z.literal(1),
  acks: z.array(z.strictObject({ gateway: z.string(), alarm: z.string(), raisedAt: z.number(), by: z.string(), at: z.number() })),
});

/**
 * Acknowledgements given at central, in one small JSON file (`<dataDir>/web/alarm-acks.json`,
 * replaced atomically and fsynced: an acknowledgement the API confirmed survives a crash). One
 * per alarm: the newest raise's. At most `maxAcks` kept (the oldest acknowledgements go first:
 * their alarms have long been raised again or forgotten), so the file and memory stay bounded.
 * Sending the acknowledgement to the gateway is the commands' job (central/README.md, "Web UI").
 */
export class AlarmAcks {
  private acks = new Map<string, CentralAck>();
  private writing: Promise<void> = Promise.resolve();

  constructor(
    readonly path: string,
    private readonly maxAcks = 10_000,
  ) {}

  /** Reads the file (absent: none yet). A damaged file is an error, never "nothing acknowledged". */
  async load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    let parsed: z.infer<typeof AckFile>;
    try {
      parsed = AckFile.parse(JSON.parse(text));
    } catch (err) {
      throw new OutpostError(
        'CONFIG_INVALID',
        `${this.path} is damaged (${(err as Error).message.slice(0, 200)}): move it away to start without central acknowledgements`,
        {
          cause: err,
        },
      );
    }
    for (const a of parsed.acks.sort((x, y) => x.at - y.at)) this.acks.set(key(a.gateway, a.alarm), a);
  }

  get(gateway: string, alarm: string): CentralAck | undefined {
    return this.acks.get(key(gateway, alarm));
  }

  /** Records an acknowledgement durably; resolves once it is on disk. Writes never interleave. */
  record(ack: CentralAck): Promise<void> {
    const run = this.writing.then(async () => {
      const k = key(ack.gateway, ack.alarm);
      // Applied once written: a failed write leaves the alarm unacknowledged, as the API says.
      // Re-inserted so the order is the order of acknowledgement (oldest first, evicted first).
      const next = new Map(this.acks);
      next.delete(k);
      next.set(k, ack);
      while (next.size > this.maxAcks) next.delete(next.keys().next().value!);
      await mkdir(dirname(this.path), { recursive: true });
      await writeFileDurably(this.path, `${JSON.stringify({ version: 1, acks: [...next.values()] })}\n`, { mode: 0o600 });
      this.acks = next;
    });
    this.writing = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  get size(): number {
    return this.acks.size;
  }
}

function key(gateway: string, alarm: string): string {
  return `${gateway}\u0000${alarm}`;
}
