import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../runtime/log.js';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import './errors.js';
import { readJsonState, writeJsonState } from '../../runtime/durable-file.js';
import { PRIORITIES, type CreditBudget, type Priority } from './budget.js';
import { CODEC_EPOCH_MS, creditsFor, type MoCodec, type Reading } from './codec.js';
import { encodeStorageStatus, type StorageStatus } from './mo-storage.js';
import { packMessage } from './pack-plan.js';
import type { MoSource } from './session.js';

export interface ForwardQueueOptions {
  dataDir: string;
  codec: MoCodec;
  /** Consumes the next MO message number durably (mo-seq.ts). */
  takeSeq: () => Promise<number>;
  /** Latest values and history kept together; beyond it the oldest history is dropped. */
  maxReadings: number;
  /** Alarm readings kept; beyond it the oldest is dropped (logged as an error). */
  maxAlarms?: number;
  log: Logger;
}

/** The message of the last attempt: it may have gone (a kill during +SBDIX), so it goes again as it is. */
interface InFlight {
  seq: number;
  bytes: Buffer;
  priority: Priority;
  counts: Record<Priority, number>;
}

interface QueueFile {
  version: 1;
  alarms: Reading[];
  latest: Reading[];
  history: Reading[];
  inflight?: { seq: number; bytes: string; priority: Priority; counts: Record<Priority, number> };
  /** The gateway's storage state waiting to go (absent in files written before it existed). */
  storage?: StorageStatus;
}

const EMPTY: QueueFile = { version: 1, alarms: [], latest: [], history: [] };
const DEFAULT_MAX_ALARMS = 500;

/**
 * The stand-alone forwarding queue (`forward: true`): readings waiting for the satellite,
 * by budget class, in `<dataDir>/mo-queue.json` (written with durable-file.ts), so alarms
 * waiting for budget or signal survive a restart and go first after it.
 *
 * It holds readings, not messages: the session loop (session.ts, `MoSource`) asks for a
 * message only when it can send one, and `packMessage` packs alarms, latest values and
 * history together then. Latest values are one per datapoint: a newer one replaces the
 * one waiting (which joins history), so an outage of many send intervals costs one
 * latest-values message afterwards, not one per interval.
 *
 * It also holds the gateway's storage state for the sync fallback link (`setStorage`,
 * mo-storage.ts): one slot, sent before anything else, from the alarm class.
 */
export class ForwardQueue implements MoSource {
  /** Readings dropped because the queue was full, since start. */
  dropped = 0;
  private readonly maxAlarms: number;
  private writing: Promise<unknown> = Promise.resolve();
  /** What the session under way sends: the storage state (which one) or readings. */
  private sending: { storage: StorageStatus } | 'readings' | undefined;

  private constructor(
    private readonly o: ForwardQueueOptions,
    private readonly file: string,
    private alarms: Reading[],
    private readonly latest: Map<string, Reading>,
    private history: Reading[],
    private inflight: InFlight | undefined,
    /** One slot: the newest storage state not sent yet (mo-storage.ts), sent first, in the alarm class. */
    private storage: StorageStatus | undefined,
  ) {
    this.maxAlarms = o.maxAlarms ?? DEFAULT_MAX_ALARMS;
  }

  static async open(o: ForwardQueueOptions): Promise<ForwardQueue> {
    const file = join(o.dataDir, 'mo-queue.json');
    let state: QueueFile;
    try {
      state = checkFile(await readJsonState<QueueFile>(file, EMPTY));
    } catch (err) {
      const e = toOutpostError(err);
      if (e.code !== 'STORAGE_OPEN_FAILED' && e.code !== 'IRIDIUM_CODEC') throw e;
      // Kept aside for a person to look at; forwarding goes on with what comes next.
      const aside = `${file}.damaged-${Date.now()}`;
      await rename(file, aside);
      o.log.error(
        { file: aside, reason: e.message },
        'Iridium forwarding queue unreadable: set aside, starting empty (waiting readings, alarms among them, are not sent)',
      );
      state = EMPTY;
    }
    const carried = (r: Reading): boolean => o.codec.carries(r);
    const alarms = state.alarms.filter(carried);
    const latest = new Map(state.latest.filter(carried).map((r) => [r.id, r]));
    const history = state.history.filter(carried);
    const lost = state.alarms.length + state.latest.length + state.history.length - alarms.length - latest.size - history.length;
    if (lost > 0) o.log.warn({ readings: lost }, 'queued readings of datapoints no longer in the Iridium codec table dropped');
    let inflight: InFlight | undefined;
    if (state.inflight) {
      const bytes = Buffer.from(state.inflight.bytes, 'base64');
      // Bytes 1-2 are the table fingerprint (codec.ts): a message of another table is not resent.
      if (bytes.length >= 3 && ((bytes[1]! << 8) | bytes[2]!) === o.codec.fingerprint) inflight = { ...state.inflight, bytes };
      else o.log.warn({ seq: state.inflight.seq }, 'the MO message in doubt at the last stop was packed with another codec table: not sent again');
    }
    const queue = new ForwardQueue(o, file, alarms, latest, history, inflight, state.storage);
    if (inflight || alarms.length > 0 || state.storage)
      o.log.info(
        { alarms: alarms.length, latest: latest.size, history: history.length, inDoubt: inflight?.seq, storage: state.storage?.state },
        'Iridium forwarding queue restored',
      );
    return queue;
  }

  /** Messages waiting: the storage state, the one in doubt, plus one while any reading waits (they are packed when they can go). */
  get size(): number {
    return (this.storage ? 1 : 0) + (this.inflight ? 1 : 0) + (this.readings > 0 ? 1 : 0);
  }

  /** The storage state waiting to be sent, if any. */
  get storageWaiting(): StorageStatus | undefined {
    return this.storage;
  }

  /**
   * The gateway's storage state (read-only, or recovered): replaces the one waiting, if any
   * (only the newest matters), and goes before everything else, paid from the alarm class. Kept
   * in memory at once, so it goes even when the disk it would be saved on is the full one;
   * resolves once on disk (rejects when that failed: it is then lost with a restart).
   *
   * `undefined` means the gateway started and reported nothing: its storage was writable then.
   * A read-only state restored from before that restart is no longer true and may never have
   * reached the central side (or did, in a session a kill cut short): it becomes `ok` (since
   * now), so the central side ends on the truth either way. An `ok` waiting stays.
   */
  async setStorage(status: StorageStatus | undefined, now: number): Promise<void> {
    if (status === undefined) {
      if (this.storage?.state !== 'read-only') return;
      status = { state: 'ok', since: now };
    }
    if (status.state !== 'ok' && status.state !== 'read-only')
      throw new OutpostError('IRIDIUM_CODEC', `storage state ${JSON.stringify((status as { state: unknown }).state)} is not ok or read-only`);
    if (!Number.isSafeInteger(status.since)) throw new OutpostError('IRIDIUM_CODEC', `storage state time ${status.since} is not a time in ms`);
    let since = status.since;
    if (since < CODEC_EPOCH_MS) {
      // A clock not set yet (no RTC, no time source since power-up): the alarm matters more than
      // its time, which goes as the codec epoch (2020-01-01T00:00:00Z), read as "unknown".
      this.o.log.warn({ since, storage: status.state }, 'storage state time is before 2020 (gateway clock not set?): sent as 2020-01-01');
      since = CODEC_EPOCH_MS;
    }
    // Only the fields of the wire format, checked by encoding before it takes the slot.
    const slot: StorageStatus = status.state === 'read-only' ? { state: 'read-only', error: status.error, since } : { state: 'ok', since };
    encodeStorageStatus(slot);
    this.storage = slot;
    await this.save();
  }

  /** Readings waiting (not counting those in the message in doubt). */
  get readings(): number {
    return this.alarms.length + this.latest.size + this.history.length;
  }

  /** Queues an alarm reading; resolves once it is on disk. */
  async addAlarm(r: Reading): Promise<void> {
    if (!this.o.codec.carries(r)) throw new OutpostError('IRIDIUM_CODEC', `${r.id}: reading not carried by the Iridium codec table`);
    this.alarms.push(r);
    if (this.alarms.length > this.maxAlarms) {
      const lost = this.alarms.splice(0, this.alarms.length - this.maxAlarms);
      this.dropped += lost.length;
      this.o.log.error({ dropped: lost.length, kept: this.maxAlarms }, 'Iridium alarm queue full: the oldest alarms were dropped');
    }
    await this.save();
  }

  /**
   * A send interval's readings become sendable: the newest of each datapoint replaces the
   * waiting latest value (which joins history), the rest join history. Resolves once on disk.
   */
  async release(batch: readonly Reading[]): Promise<void> {
    const newest = new Map<string, Reading>();
    const rest: Reading[] = [];
    for (const r of batch) {
      if (!this.o.codec.carries(r)) continue;
      const n = newest.get(r.id);
      if (!n) newest.set(r.id, r);
      else if (r.t >= n.t) {
        rest.push(n);
        newest.set(r.id, r);
      } else rest.push(r);
    }
    for (const [id, r] of newest) {
      const waiting = this.latest.get(id);
      if (waiting && waiting.t > r.t) {
        rest.push(r); // a late reading: the waiting one is still the newest
        continue;
      }
      if (waiting) rest.push(waiting);
      this.latest.set(id, r);
    }
    this.history.push(...rest.sort((a, b) => a.t - b.t));
    const room = Math.max(0, this.o.maxReadings - this.latest.size);
    if (this.history.length > room) {
      const lost = this.history.length - room;
      this.history.splice(0, lost);
      this.dropped += lost;
      this.o.log.warn({ dropped: lost, kept: this.o.maxReadings }, 'Iridium forwarding queue full: the oldest history was dropped');
    }
    if (batch.length > 0) await this.save();
  }

  ready(budget: CreditBudget): Priority | undefined {
    // The storage state goes first: a one-credit message the alarm reserve pays for.
    if (this.storage) return budget.allows(creditsFor(encodeStorageStatus(this.storage).length), 'alarm') ? 'alarm' : undefined;
    if (this.inflight) return budget.allows(creditsFor(this.inflight.bytes.length), this.inflight.priority) ? this.inflight.priority : undefined;
    // Each class's limit is within the one above it (budget.ts): if the highest class
    // waiting cannot have a credit, the lower ones cannot either.
    for (const p of PRIORITIES) if (this.list(p).length > 0) return budget.allows(1, p) ? p : undefined;
    return undefined;
  }

  async take(budget: CreditBudget): Promise<{ bytes: Buffer; priority: Priority } | undefined> {
    if (this.storage) {
      const bytes = encodeStorageStatus(this.storage);
      if (!budget.allows(creditsFor(bytes.length), 'alarm')) return undefined;
      // Already on disk in its slot: after a kill during the session it goes again (the
      // central side takes the same state twice as one).
      this.sending = { storage: this.storage };
      return { bytes, priority: 'alarm' };
    }
    this.sending = 'readings';
    if (this.inflight) return { bytes: this.inflight.bytes, priority: this.inflight.priority };
    if (this.ready(budget) === undefined) return undefined;
    const seq = await this.o.takeSeq();
    const classes = { alarm: [...this.alarms], latest: [...this.latest.values()], history: [...this.history] };
    const packed = packMessage(this.o.codec, seq, classes, (credits, p) => budget.allows(credits, p));
    if (!packed) return undefined;
    this.alarms.splice(0, packed.counts.alarm);
    for (const r of classes.latest.slice(0, packed.counts.latest)) this.latest.delete(r.id);
    this.history.splice(0, packed.counts.history);
    this.inflight = { seq, bytes: packed.bytes, priority: packed.priority, counts: packed.counts };
    // Written ahead: after a kill during the session the same bytes (same message number,
    // which the central side drops as a copy) go again, instead of the readings in a new one.
    await this.save();
    return { bytes: packed.bytes, priority: packed.priority };
  }

  async sent(): Promise<void> {
    const sending = this.sending;
    this.sending = undefined;
    if (sending !== undefined && sending !== 'readings') {
      this.o.log.info({ storage: sending.storage.state, since: sending.storage.since }, 'storage state sent over the satellite');
      // A newer state that came during the session still goes.
      if (this.storage === sending.storage) this.storage = undefined;
    } else this.inflight = undefined;
    await this.save();
  }

  async drop(reason: OutpostError): Promise<void> {
    const sending = this.sending;
    this.sending = undefined;
    if (sending !== undefined && sending !== 'readings') {
      if (this.storage === sending.storage) this.storage = undefined;
      this.o.log.error({ storage: sending.storage.state, code: reason.code, reason: reason.message }, 'Iridium storage status message dropped');
      await this.save();
      return;
    }
    const lost = this.inflight;
    this.inflight = undefined;
    if (lost) this.o.log.error({ seq: lost.seq, readings: lost.counts, code: reason.code, reason: reason.message }, 'Iridium forwarding message dropped');
    await this.save();
  }

  private list(p: Priority): readonly Reading[] {
    return p === 'alarm' ? this.alarms : p === 'latest' ? [...this.latest.values()] : this.history;
  }

  /** Writes the current state; writes run one after another (the temp file name is per process). */
  private save(): Promise<void> {
    const run = this.writing.then(() => writeJsonState(this.file, this.toFile()));
    this.writing = run.catch(() => undefined); // a failed write fails its own caller only
    return run;
  }

  private toFile(): QueueFile {
    const f: QueueFile = { version: 1, alarms: this.alarms, latest: [...this.latest.values()], history: this.history };
    if (this.storage) f.storage = this.storage;
    if (this.inflight)
      f.inflight = { seq: this.inflight.seq, bytes: this.inflight.bytes.toString('base64'), priority: this.inflight.priority, counts: this.inflight.counts };
    return f;
  }
}

function checkFile(f: QueueFile): QueueFile {
  const isReading = (r: unknown): r is Reading => {
    const x = r as Reading;
    return (
      typeof x === 'object' &&
      x !== null &&
      typeof x.id === 'string' &&
      typeof x.t === 'number' &&
      (x.v === null || typeof x.v === 'number' || typeof x.v === 'boolean')
    );
  };
  const ok =
    typeof f === 'object' &&
    f !== null &&
    f.version === 1 &&
    [f.alarms, f.latest, f.history].every((l) => Array.isArray(l) && l.every(isReading)) &&
    (f.inflight === undefined || (typeof f.inflight.bytes === 'string' && Number.isInteger(f.inflight.seq) && PRIORITIES.includes(f.inflight.priority))) &&
    (f.storage === undefined || isStorageStatus(f.storage));
  if (!ok) throw new OutpostError('IRIDIUM_CODEC', 'mo-queue.json does not hold a forwarding queue');
  return f;
}

function isStorageStatus(s: unknown): s is StorageStatus {
  const x = s as Record<string, unknown>;
  return (
    typeof x === 'object' &&
    x !== null &&
    Number.isSafeInteger(x.since) &&
    (x.since as number) >= CODEC_EPOCH_MS &&
    (x.state === 'ok' || (x.state === 'read-only' && typeof x.error === 'string'))
  );
}
