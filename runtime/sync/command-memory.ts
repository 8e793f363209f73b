import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
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
}

/** `<dataDir>/sync/commands-<link>.json`, replaced atomically. */
interface MemoryFile {
  version: 1;
  /** requestId → ack, oldest first. */
  answered: Array<[string, Answered]>;
  /** `<command>:<datapoint id>` → command time (`t`) of the last one applied, oldest first. */
  applied: Array<[string, number]>;
}

/**
 * What a link's downlink has answered, durably: the last `maxIds` requestIds (at most
 * 7 days old) with their acks, so a copy of a command — redelivered, sent twice, replayed
 * by anyone who may publish on the topic, or a retained one at every reconnect — is
 * answered again, never applied again, across restarts; and per command and datapoint the
 * time of the last command applied, so an older retained command does not undo a newer one.
 * Written (temp + fsync + rename) after the command was applied and before it is acked:
 * a crash in between (one fsync) may apply that one command once more after the restart.
 */
export class CommandMemory {
  private readonly answered = new Map<string, Answered>();
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
    for (const [rid, entry] of state.answered) this.answered.set(rid, entry);
    for (const [key, t] of state.applied) this.applied.set(key, t);
    this.prune();
  }

  /** The ack a requestId was answered with, if it is still in the window. */
  get(requestId: string): DownlinkAck | undefined {
    const entry = this.answered.get(requestId);
    if (!entry || this.o.clock.now() - entry.at > MEMORY_MAX_AGE_MS) return undefined;
    return entry.ack;
  }

  /** Command time of the last `command` applied to `id`. */
  lastApplied(key: string): number | undefined {
    return this.applied.get(key);
  }

  /**
   * Remembers an answer (and, for an applied command with a time, that time for its key)
   * and makes it durable. In memory at once, so a copy arriving during the write is answered.
   */
  async remember(requestId: string, ack: DownlinkAck, applied?: { key: string; t: number }): Promise<void> {
    this.answered.delete(requestId);
    this.answered.set(requestId, { ack: compact(ack), at: this.o.clock.now() });
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
