import { createHmac, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import { OutpostError } from '../../core/errors.js';
import './errors.js';
import type { CodecDatapoint } from './codec.js';
import { readJsonState, writeJsonState } from '../../runtime/durable-file.js';
import { ByteReader, ByteWriter } from './varint.js';

/**
 * Authenticated mobile-terminated (MT) commands. Anyone who knows a modem's IMEI can
 * queue an MT message for it (RockBLOCK/Iridium gateways accept email or HTTP), so every
 * MT message carries a truncated HMAC-SHA256 under a key shared with the central side,
 * and a counter that must strictly increase (replay protection; the last accepted value
 * is stored durably in the adapter's data directory before any command is acted on).
 *
 * Wire format, version 1 (at most 270 bytes, the 9602/9603 MT limit):
 *   u8   version (= 1)
 *   uv   counter (strictly increasing)
 *   ops until the tag:
 *     0x01 setpoint        uv index, sv value × 10^decimals (booleans 0/1)
 *     0x02 setpoint+expiry uv index, sv value, uv seconds until it expires
 *     0x03 command         uv command index (position in the configured command list)
 *     0x04 schedule        uv index, uv base (seconds since 2025-01-01T00:00:00Z), uv count
 *                          (0 clears the actuator's schedule), then per entry: uv seconds after
 *                          base, sv value × 10^decimals (booleans 0/1)
 *     0x05 request ref     8 bytes = SHA-256(requestId)[0..8): names the central requestId of the
 *                          op that follows it (not an op of its own), so the gateway answers a
 *                          command it applied over another link from its memory instead of
 *                          applying it again (runtime/sync/command-memory.ts `requestRef`)
 *   8 bytes tag = HMAC-SHA256(key, "outpost-iridium-mt/1" ‖ 0x00 ‖ context ‖ 0x00 ‖ all bytes before the tag)[0..8)
 * `context` (the gateway id) binds a message to one site even when keys are shared.
 * Ops 0x04 and 0x05 were added to version 1 (issue 26): a gateway from before them refuses a
 * message carrying them as malformed ("unknown op"), never misreads it; central sends them only
 * to gateways configured with a schedule-capable table (`downlink.mt`). A schedule of at most
 * `MAX_MT_SCHEDULE_ENTRIES` entries, all within `MAX_MT_SCHEDULE_SPAN_S` of its base.
 */

const MT_VERSION = 1;
const MT_TAG_BYTES = 8;
const MAX_MT_BYTES = 270;
const DOMAIN = 'outpost-iridium-mt/1';

/** Start of the schedule op's base time: 2025-01-01T00:00:00Z (keeps the varint short). */
export const MT_EPOCH_MS = Date.UTC(2025, 0, 1);
/** Entries of one schedule op at most (a 270-byte message holds about 50 small ones anyway). */
export const MAX_MT_SCHEDULE_ENTRIES = 64;
/** Entries lie within this many seconds of the base (one year). */
export const MAX_MT_SCHEDULE_SPAN_S = 366 * 24 * 3600;
const REF_BYTES = 8;

/** `ref`: hex of the 8-byte request reference (op 0x05) that named this op's requestId, if any. */
export type MtCommand =
  | { kind: 'setpoint'; id: string; v: number | boolean; expiresInS?: number; ref?: string }
  | { kind: 'schedule'; id: string; entries: Array<{ at: number; v: number | boolean }>; ref?: string }
  | { kind: 'command'; name: string; ref?: string };

export interface MtFormat {
  /** Shared secret (at least 16 bytes). */
  key: Buffer;
  /** Binds messages to one site (the gateway id). */
  context: string;
  datapoints: readonly CodecDatapoint[];
  /** Named commands, by index. */
  commands: readonly string[];
}

function tag(format: MtFormat, body: Uint8Array): Buffer {
  return createHmac('sha256', format.key)
    .update(DOMAIN)
    .update(Buffer.from([0]))
    .update(format.context)
    .update(Buffer.from([0]))
    .update(body)
    .digest()
    .subarray(0, MT_TAG_BYTES);
}

/** Builds an MT message (the central side's half; used by tests and tools). */
export function encodeMt(format: MtFormat, counter: number, commands: readonly MtCommand[]): Buffer {
  const w = new ByteWriter(64).byte(MT_VERSION).uvarint(counter);
  for (const c of commands) {
    if (c.ref !== undefined) {
      if (!/^[0-9a-f]{16}$/.test(c.ref)) throw new OutpostError('IRIDIUM_CODEC', `MT request ref must be 16 hex digits, not ${JSON.stringify(c.ref)}`);
      w.byte(0x05).bytes(Buffer.from(c.ref, 'hex'));
    }
    if (c.kind === 'command') {
      const i = format.commands.indexOf(c.name);
      if (i < 0) throw new OutpostError('IRIDIUM_CODEC', `unknown MT command ${c.name}`);
      w.byte(0x03).uvarint(i);
      continue;
    }
    const i = format.datapoints.findIndex((d) => d.id === c.id);
    if (i < 0) throw new OutpostError('IRIDIUM_CODEC', `datapoint ${c.id} is not in the Iridium table`);
    const dp = format.datapoints[i]!;
    const scale = (v: number | boolean): number => (dp.type === 'boolean' ? (v ? 1 : 0) : Math.round((v as number) * 10 ** dp.decimals));
    if (c.kind === 'schedule') {
      encodeSchedule(w, i, c.entries, scale);
      continue;
    }
    const scaled = scale(c.v);
    w.byte(c.expiresInS === undefined ? 0x01 : 0x02)
      .uvarint(i)
      .svarint(scaled);
    if (c.expiresInS !== undefined) w.uvarint(c.expiresInS);
  }
  const body = w.toBuffer();
  const out = Buffer.concat([body, tag(format, body)]);
  if (out.length > MAX_MT_BYTES) throw new OutpostError('IRIDIUM_MO_SIZE', `MT message is ${out.length} bytes; at most ${MAX_MT_BYTES}`);
  return out;
}

/** Op 0x04: entry times in whole seconds after the earliest (sub-second parts are dropped). */
function encodeSchedule(
  w: ByteWriter,
  index: number,
  entries: ReadonlyArray<{ at: number; v: number | boolean }>,
  scale: (v: number | boolean) => number,
): void {
  if (entries.length > MAX_MT_SCHEDULE_ENTRIES)
    throw new OutpostError('IRIDIUM_CODEC', `MT schedule has ${entries.length} entries; at most ${MAX_MT_SCHEDULE_ENTRIES}`);
  const seconds = entries.map((e, n) => {
    if (!Number.isSafeInteger(e.at) || e.at < MT_EPOCH_MS)
      throw new OutpostError('IRIDIUM_CODEC', `MT schedule entries[${n}].at must be epoch ms after 2025-01-01`);
    return Math.floor((e.at - MT_EPOCH_MS) / 1000);
  });
  const base = seconds.length === 0 ? 0 : Math.min(...seconds);
  w.byte(0x04).uvarint(index).uvarint(base).uvarint(entries.length);
  entries.forEach((e, n) => {
    const offset = seconds[n]! - base;
    if (offset > MAX_MT_SCHEDULE_SPAN_S) throw new OutpostError('IRIDIUM_CODEC', `MT schedule spans more than ${MAX_MT_SCHEDULE_SPAN_S} s`);
    w.uvarint(offset).svarint(scale(e.v));
  });
}

export interface AcceptedMt {
  counter: number;
  commands: MtCommand[];
}

/** Verifies and decodes MT messages at the site; keeps the replay counter durable. */
export class MtVerifier {
  private constructor(
    private readonly format: MtFormat,
    private readonly file: string,
    private last: number,
  ) {}

  static async open(dataDir: string, format: MtFormat): Promise<MtVerifier> {
    if (format.key.length < 16) throw new OutpostError('CONFIG_INVALID', 'the Iridium MT key must be at least 16 bytes');
    const file = join(dataDir, 'mt-counter.json');
    const state = await readJsonState<{ last: number }>(file, { last: -1 });
    return new MtVerifier(format, file, state.last);
  }

  get lastCounter(): number {
    return this.last;
  }

  /**
   * Authenticates, checks freshness, decodes, then stores the counter. Throws
   * IRIDIUM_MT_REFUSED (details.reason: malformed | forged | replayed) for anything else.
   */
  async accept(bytes: Uint8Array): Promise<AcceptedMt> {
    const refuse = (reason: string, message: string, details: Record<string, unknown> = {}): never => {
      throw new OutpostError('IRIDIUM_MT_REFUSED', message, { details: { reason, ...details } });
    };
    if (bytes.length < 2 + MT_TAG_BYTES || bytes.length > MAX_MT_BYTES) refuse('malformed', `MT message of ${bytes.length} bytes`);
    const body = bytes.subarray(0, bytes.length - MT_TAG_BYTES);
    const received = Buffer.from(bytes.subarray(bytes.length - MT_TAG_BYTES));
    // Authenticate before interpreting anything else; constant-time comparison.
    if (!timingSafeEqual(received, tag(this.format, body))) refuse('forged', 'MT message authentication failed');
    const r = new ByteReader(body);
    let counter: number;
    let commands: MtCommand[];
    try {
      const version = r.byte();
      if (version !== MT_VERSION) refuse('malformed', `MT version ${version} is not supported`);
      counter = r.uvarint();
      commands = this.decodeOps(r);
    } catch (err) {
      if (err instanceof OutpostError && err.code === 'IRIDIUM_MT_REFUSED') throw err;
      return refuse('malformed', `MT message does not decode: ${(err as Error).message}`);
    }
    if (counter <= this.last) refuse('replayed', `MT counter ${counter} is not above the last accepted ${this.last}`, { counter, last: this.last });
    await writeJsonState(this.file, { last: counter });
    this.last = counter;
    return { counter, commands };
  }

  private decodeOps(r: ByteReader): MtCommand[] {
    const out: MtCommand[] = [];
    let ref: string | undefined;
    const push = (c: MtCommand): void => {
      if (ref !== undefined) c.ref = ref;
      ref = undefined;
      out.push(c);
    };
    while (r.remaining > 0) {
      const op = r.byte();
      if (op === 0x05) {
        if (ref !== undefined) throw new Error('two request refs in a row');
        ref = Buffer.from(r.bytes(REF_BYTES)).toString('hex');
        continue;
      }
      if (op === 0x03) {
        const i = r.uvarint();
        const name = this.format.commands[i];
        if (name === undefined) throw new Error(`unknown command index ${i}`);
        push({ kind: 'command', name });
        continue;
      }
      if (op !== 0x01 && op !== 0x02 && op !== 0x04) throw new Error(`unknown op 0x${op.toString(16)}`);
      const i = r.uvarint();
      const dp = this.format.datapoints[i];
      if (!dp) throw new Error(`unknown datapoint index ${i}`);
      const value = (raw: number): number | boolean => (dp.type === 'boolean' ? raw !== 0 : dp.decimals === 0 ? raw : raw / 10 ** dp.decimals);
      if (op === 0x04) {
        const base = r.uvarint();
        const count = r.uvarint();
        // Each entry takes at least 2 bytes: a count beyond that is a lie, refused before any allocation.
        if (count > MAX_MT_SCHEDULE_ENTRIES || count * 2 > r.remaining) throw new Error(`schedule of ${count} entries does not fit`);
        const entries: Array<{ at: number; v: number | boolean }> = [];
        for (let n = 0; n < count; n++) {
          const offset = r.uvarint();
          if (offset > MAX_MT_SCHEDULE_SPAN_S) throw new Error(`schedule entry ${offset} s after its base is beyond ${MAX_MT_SCHEDULE_SPAN_S} s`);
          entries.push({ at: MT_EPOCH_MS + (base + offset) * 1000, v: value(r.svarint()) });
        }
        push({ kind: 'schedule', id: dp.id, entries });
        continue;
      }
      const cmd: MtCommand = { kind: 'setpoint', id: dp.id, v: value(r.svarint()) };
      if (op === 0x02) cmd.expiresInS = r.uvarint();
      push(cmd);
    }
    if (ref !== undefined) throw new Error('a request ref names no op');
    if (out.length === 0) throw new Error('no commands');
    return out;
  }
}
