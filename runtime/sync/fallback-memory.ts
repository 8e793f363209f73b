import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { toOutpostError } from '../../core/errors.js';
import { readJsonState, writeJsonState } from '../durable-file.js';
import type { Logger } from '../log.js';
import type { OutboxRecord } from '../../storage/store.js';
import type { Batch, Link } from './link.js';
import type { Lane } from './scheduler.js';

/** Most sequence numbers remembered as sent over the fallback link. */
const FALLBACK_MEMORY = 100_000;

/**
 * Failures after which a message may have gone out all the same: the adapter stopped
 * while its session ran (the modem finishes a session it started, and it is billed), or
 * the modem did not answer in time.
 */
const IN_DOUBT = new Set(['ADAPTER_UNAVAILABLE', 'IRIDIUM_TIMEOUT']);

/**
 * `<dataDir>/sync/fallback-sent.json`: what went over the fallback link and the primary
 * has not acknowledged yet, and what was handed to the link but not confirmed (`inDoubt`).
 */
interface FallbackSentState {
  alarms: number[];
  latest: Array<[string, number]>;
  inDoubt?: { alarms: number[]; latest: Array<[string, number]> };
}

export interface FallbackMemoryOptions {
  dataDir: string;
  log: Logger;
  /** Alarm as the priority selection sees it (alarm datapoint, or a bad/stale reading). */
  isAlarm: (r: OutboxRecord) => boolean;
}

/**
 * What the metered fallback link (satellite) already carried, so it never pays twice
 * for the same reading: alarms by sequence, and per datapoint the latest value sent.
 * Kept in `fallback-sent.json` across restarts.
 *
 * Written ahead: the records of a message are recorded as "in doubt" before the message
 * is handed to the link. A restart (kill -9, or a stop while the modem's session ran)
 * cannot tell whether a message in doubt went out; a modem finishes a session it has
 * started and it is billed. Latest values in doubt count as sent (paying twice for an
 * unchanged value is what this avoids; the primary backfills them anyway); alarms in
 * doubt are sent again (a duplicate alarm is cheaper than a lost one).
 */
export class FallbackMemory {
  /** Alarm records already sent over the fallback link, by sequence. */
  private readonly alarms = new Set<number>();
  /** Per datapoint, the sequence of the latest value sent over the fallback link. */
  private readonly latest = new Map<string, number>();
  private inDoubt: Batch | undefined;

  constructor(private readonly o: FallbackMemoryOptions) {}

  private get file(): string {
    return join(this.o.dataDir, 'sync', 'fallback-sent.json');
  }

  /** Loads what the previous run sent; only what the primary has not acknowledged (`> acked`) matters. */
  async load(acked: number): Promise<void> {
    const state = await readJsonState<FallbackSentState>(this.file, { alarms: [], latest: [] });
    for (const seq of state.alarms) if (seq > acked) this.alarms.add(seq);
    for (const [id, seq] of state.latest) if (seq > acked) this.setLatest(id, seq);
    const doubt = state.inDoubt;
    if (doubt && (doubt.latest.length > 0 || doubt.alarms.length > 0)) {
      for (const [id, seq] of doubt.latest) if (seq > acked) this.setLatest(id, seq);
      this.o.log.info(
        { latest: doubt.latest.length, alarms: doubt.alarms.length },
        'a fallback message was under way when the gateway stopped: its latest values count as sent, its alarms go again',
      );
    }
  }

  /** The priority selection's filter: what the fallback link has carried already. */
  skip = (r: { seq: number; id: string }, alarm: boolean): boolean => (alarm ? this.alarms.has(r.seq) : r.seq <= (this.latest.get(r.id) ?? 0));

  /** The primary acknowledged history up to `last`: alarms up to there need no memory. */
  forgetUpTo(last: number): void {
    for (const seq of this.alarms) if (seq <= last) this.alarms.delete(seq);
  }

  /**
   * Sends `batch` over `lane`, recording it before (in doubt) and after (sent, or not
   * sent when the link says so for certain). Throws what the link threw.
   */
  async send(lane: Lane, batch: Batch, acked: number): Promise<number> {
    this.inDoubt = batch;
    await this.save(lane.link, acked);
    let bytes: number;
    try {
      await lane.bucket.ready();
      bytes = await lane.link.send(batch);
    } catch (err) {
      const e = toOutpostError(err);
      // Failed for certain: nothing was paid. In doubt: the same rule as after a restart.
      if (IN_DOUBT.has(e.code)) for (const r of batch.records) if (!this.o.isAlarm(r)) this.setLatest(r.id, r.seq);
      this.inDoubt = undefined;
      await this.save(lane.link, acked);
      throw e;
    }
    lane.bucket.charge(bytes);
    this.inDoubt = undefined;
    for (const r of batch.records) {
      this.alarms.add(r.seq);
      this.setLatest(r.id, r.seq);
    }
    while (this.alarms.size > FALLBACK_MEMORY) this.alarms.delete(this.alarms.values().next().value!);
    while (this.latest.size > FALLBACK_MEMORY) this.latest.delete(this.latest.keys().next().value!);
    await this.save(lane.link, acked);
    return bytes;
  }

  private setLatest(id: string, seq: number): void {
    this.latest.set(id, Math.max(seq, this.latest.get(id) ?? 0));
  }

  /** Persists the memory; a failure only risks sending those readings once more, so it is logged. */
  private async save(link: Link, acked: number): Promise<void> {
    const doubt = this.inDoubt?.records ?? [];
    const state: FallbackSentState = {
      alarms: [...this.alarms].filter((seq) => seq > acked),
      latest: [...this.latest].filter(([, seq]) => seq > acked),
      inDoubt: {
        alarms: doubt.filter((r) => this.o.isAlarm(r)).map((r) => r.seq),
        latest: doubt.filter((r) => !this.o.isAlarm(r)).map((r) => [r.id, r.seq] as [string, number]),
      },
    };
    try {
      await mkdir(dirname(this.file), { recursive: true });
      await writeJsonState(this.file, state);
    } catch (err) {
      this.o.log.warn(
        { link: link.name, file: this.file, reason: toOutpostError(err).message },
        'could not record what went over the fallback link; after a restart it may be sent again',
      );
    }
  }
}
