import { createHash } from 'node:crypto';
import { mkdir, readdir, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { OutpostError } from '../../core/errors.js';
import '../../storage/errors.js'; // registers the STORAGE_* codes thrown here
import { readJsonState, writeJsonState } from '../durable-file.js';
import type { Clock } from '../../core/clock.js';
import type { DownlinkAck } from './link.js';

/** Longest a requestId is remembered, whatever the count. */
const MEMORY_MAX_AGE_MS = 7 * 24 * 3600_000;
/** Most (command, datapoint) pairs whose last applied time is kept. */
const APPLIED_MAX = 10_000;
/** A remembered ack's `result` larger than this is replaced by a marker (the file is rewritten per command). */
const RESULT_MAX_CHARS = 2048;

interface Answered {
  ack: DownlinkAck;
  /** When it was answered (gateway clock), for the age bound. */
  at: number;
  /** `requestRef` of the central requestId (absent in files written before it: computed at load). */
  ref?: string;
}

/**
 * The short reference to a central requestId that fits an Iridium MT message (op 0x05,
 * adapters/iridium/mt.ts): the first 8 bytes of SHA-256(requestId), hex. 64 bits: two of the
 * ≤100 000 remembered ids collide with a chance of about 3·10⁻¹⁰.
 */
export function requestRef(requestId: string): string {
  return createHash('sha256').update(requestId, 'utf8').digest().subarray(0, 8).toString('hex');
}

/** `<dataDir>/sync/commands.json` (before issue 26: one `commands-<link>.json` per MQTT link), replaced atomically. */
interface MemoryFile {
  version: 1;
  /** requestId → ack, oldest first. */
  answered: Array<[string, Answered]>;
  /** `<command>:<datapoint id>` → command time (`t`) of the last one applied, oldest first. */
  applied: Array<[string, number]>;
}

/**
 * What the gateway's downlink has answered, durably, over every link (MQTT, HTTP poll, Iridium
 * MT): the last `maxIds` requestIds (at most 7 days old) with their acks, each findable by its
 * `requestRef` too, so a copy of a command — redelivered, sent twice, sent again over another
 * link, replayed by anyone who may publish on the topic, or a retained one at every reconnect —
 * is answered again, never applied again, across restarts; and per command and datapoint the
 * time of the last command applied, so an older retained command does not undo a newer one.
 * Written (temp + fsync + rename) after the command was applied and before it is acked:
 * a crash in between (one fsync) may apply that one command once more after the restart.
 */
export class CommandMemory {
  private readonly answered = new Map<string, Answered>();
  /** requestRef → requestId of `answered`. */
  private readonly refs = new Map<string, string>();
  private readonly applied = new Map<string, number>();
  /** Writes go out one at a time, each with the state as it is then. */
  private writing: Promise<void> = Promise.resolve();

  constructor(
    /** Without `file` (a link built in code, no state folder) the memory lasts as long as the process. */
    private readonly o: { file: string | undefined; maxIds: number; clock: Clock },
  ) {}

  async load(): Promise<void> {
    if (this.o.file === undefined) return;
    let state: MemoryFile;
    try {
      state = await readJsonState<MemoryFile>(this.o.file, { version: 1, answered: [], applied: [] });
      if (!Array.isArray(state.answered) || !Array.isArray(state.applied)) throw new Error('unexpected shape');
    } catch (err) {
      // Failing closed: without it a replayed command would be applied again.
      throw new OutpostError(
        'STORAGE_CORRUPT',
        `downlink command memory ${this.o.file} is unreadable (${(err as Error).message}); delete it to start with an empty memory (commands answered before may then be applied again)`,
        { cause: err },
      );
    }
    this.merge(state);
  }

  /**
   * Merges the per-link memories of before issue 26 (`commands-<link>.json` beside `file`),
   * at start: what a link answered before the upgrade stays answered. Once the shared file is
   * written, each is renamed `<name>.merged` (kept for inspection, not read again). Returns how
   * many requestIds came from them. Unreadable ones fail closed, like `load`.
   */
  async absorbLegacy(): Promise<number> {
    if (this.o.file === undefined) return 0;
    const dir = dirname(this.o.file);
    const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw new OutpostError('STORAGE_OPEN_FAILED', `cannot list ${dir}: ${err.message}`, { cause: err });
    });
    let absorbed = 0;
    const legacyNames = names.filter((n) => /^commands-.+\.json$/.test(n)).sort();
    for (const name of legacyNames) {
      const before = this.answered.size;
      const legacy = new CommandMemory({ file: join(dir, name), maxIds: this.o.maxIds, clock: this.o.clock });
      await legacy.load();
      this.merge({ version: 1, answered: [...legacy.answered], applied: [...legacy.applied] });
      absorbed += this.answered.size - before;
    }
    if (legacyNames.length === 0) return 0;
    await this.save();
    for (const name of legacyNames) await rename(join(dir, name), join(dir, `${name}.merged`));
    return absorbed;
  }

  /** Adds entries it does not have, keeps them oldest first, prunes. */
  private merge(state: MemoryFile): void {
    const all = [...this.answered, ...state.answered.filter(([rid]) => !this.answered.has(rid))].sort((a, b) => a[1].at - b[1].at);
    this.answered.clear();
    this.refs.clear();
    for (const [rid, entry] of all) {
      const ref = entry.ref ?? requestRef(rid);
      this.answered.set(rid, { ...entry, ref });
      this.refs.set(ref, rid);
    }
    for (const [key, t] of state.applied) if (t > (this.applied.get(key) ?? -Infinity)) this.applied.set(key, t);
    this.prune();
  }

  /**
   * The ack a requestId was answered with, if it is still in the window: found by the id, or by
   * its reference (`ref`, else `requestRef(requestId)`), so the same command under another name
   * (an MT message's counter) is found as well. The ack carries the requestId asked for.
   */
  get(requestId: string, ref?: string): DownlinkAck | undefined {
    const entry = this.answered.get(requestId) ?? this.answered.get(this.refs.get(ref ?? requestRef(requestId)) ?? '');
    if (!entry || this.o.clock.now() - entry.at > MEMORY_MAX_AGE_MS) return undefined;
    return { ...entry.ack, requestId };
  }

  /** Command time of the last `command` applied to `id`. */
  lastApplied(key: string): number | undefined {
    return this.applied.get(key);
  }

  /**
   * Remembers an answer (and, for an applied command with a time, that time for its key)
   * and makes it durable. In memory at once, so a copy arriving during the write is answered.
   */
  async remember(requestId: string, ack: DownlinkAck, applied?: { key: string; t: number }, ref = requestRef(requestId)): Promise<void> {
    this.answered.delete(requestId);
    this.answered.set(requestId, { ack: compact(ack), at: this.o.clock.now(), ref });
    this.refs.set(ref, requestId);
    if (applied && applied.t > (this.applied.get(applied.key) ?? -Infinity)) {
      this.applied.delete(applied.key);
      this.applied.set(applied.key, applied.t);
    }
    this.prune();
    const write = this.writing.then(() => this.save());
    // The chain goes on after a failed write; this caller still sees its failure.
    this.writing = write.catch(() => undefined);
    await write;
  }

  private prune(): void {
    const now = this.o.clock.now();
    for (const [rid, entry] of this.answered) {
      if (this.answered.size <= this.o.maxIds && now - entry.at <= MEMORY_MAX_AGE_MS) break;
      this.answered.delete(rid);
      if (entry.ref !== undefined && this.refs.get(entry.ref) === rid) this.refs.delete(entry.ref);
    }
    while (this.applied.size > APPLIED_MAX) this.applied.delete(this.applied.keys().next().value!);
  }

  private async save(): Promise<void> {
    if (this.o.file === undefined) return;
    const state: MemoryFile = { version: 1, answered: [...this.answered], applied: [...this.applied] };
    await mkdir(dirname(this.o.file), { recursive: true });
    await writeJsonState(this.o.file, state);
  }
}

function compact(ack: DownlinkAck): DownlinkAck {
  if (ack.result === undefined || JSON.stringify(ack.result).length <= RESULT_MAX_CHARS) return ack;
  return { ...ack, result: { truncated: true } };
}
