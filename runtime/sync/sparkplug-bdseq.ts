import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../log.js';
import { OutpostError } from '../../core/errors.js';
import '../../storage/errors.js'; // registers the STORAGE_* codes thrown here
import { readJsonState, writeJsonState } from '../durable-file.js';
import { SEQ_MODULUS } from './sparkplug.js';

/** `<dataDir>/sync/sparkplug-<link>.json`: the last bdSeq a server may hold in our will. */
interface BdSeqState {
  bdSeq: number;
}

/**
 * The Sparkplug birth/death sequence number (3.0.0 §5.4, §6.4.25 NDEATH): one per MQTT
 * session, the same in the NDEATH will of the CONNECT and in the NBIRTH that follows
 * ([tck-id-payloads-nbirth-bdseq-repeat]), the next session's one higher, 255 wrapping to 0
 * ([tck-id-message-flow-edge-node-birth-publish-will-message-payload-bdSeq]).
 *
 * A bdSeq is used up once a CONNECT carrying it may have reached the server (the connection
 * was up) and the server did not refuse it: from then on the server may hold, and later
 * publish, a will with it, so the next CONNECT must carry a new one for hosts to tell the
 * old death from the new session ([tck-id-payloads-ndeath-bdseq]). An attempt that never got
 * a connection (server down, network down) or got a refusing CONNACK registered no will and
 * uses none up. The last used one is kept in a file, written before the NBIRTH goes out, so a
 * restart (even after kill -9) continues with the next, not with 0 again.
 */
export class BdSeqCounter {
  /** bdSeq of the next (or current) CONNECT's will. */
  private next = 0;
  /** A CONNECT with `next` went out and was not refused. */
  private sent = false;
  private lastSaved: number | undefined;
  private saving: Promise<void> = Promise.resolve();

  constructor(
    private readonly file: string | undefined,
    private readonly log: Logger,
  ) {}

  /** Reads the last used bdSeq; the first CONNECT takes the one after it (0 on a fresh data dir). */
  async load(): Promise<void> {
    if (!this.file) return;
    const state = await readJsonState<BdSeqState | undefined>(this.file, undefined);
    if (state === undefined) return;
    const last = state.bdSeq;
    if (!Number.isInteger(last) || last < 0 || last >= SEQ_MODULUS) {
      throw new OutpostError(
        'STORAGE_OPEN_FAILED',
        `${this.file}: bdSeq ${JSON.stringify(last)} is not an integer 0-255; refusing to guess (remove the file to start at 0)`,
      );
    }
    this.lastSaved = last;
    this.next = (last + 1) % SEQ_MODULUS;
  }

  /** bdSeq of the current session (after `connectSent`) or of the next CONNECT. */
  get value(): number {
    return this.next;
  }

  /** The CONNECT with `value` in its will may have reached the server: record it as used. */
  connectSent(): void {
    this.sent = true;
    const value = this.next;
    if (!this.file || this.lastSaved === value) return;
    this.lastSaved = value;
    const file = this.file;
    this.saving = this.saving.then(async () => {
      try {
        await mkdir(dirname(file), { recursive: true });
        await writeJsonState(file, { bdSeq: value } satisfies BdSeqState);
      } catch (err) {
        // Not fatal for this session; only a restart before the next successful write could repeat this bdSeq.
        this.lastSaved = undefined;
        this.log.warn({ file, bdSeq: value, reason: (err as Error).message }, 'Sparkplug bdSeq not persisted; a restart now could repeat it');
      }
    });
  }

  /** CONNACK refused the connection: the server holds no will, the bdSeq stays for the next CONNECT. */
  connectRefused(): void {
    this.sent = false;
  }

  /** Resolves once the bdSeq of the current CONNECT is on disk (await before the NBIRTH). */
  persisted(): Promise<void> {
    return this.saving;
  }

  /** The connection ended. True when its bdSeq was used up and the next CONNECT carries a new one. */
  connectionClosed(): boolean {
    if (!this.sent) return false;
    this.sent = false;
    this.next = (this.next + 1) % SEQ_MODULUS;
    return true;
  }
}
