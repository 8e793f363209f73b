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
 *   8 bytes tag = HMAC-SHA256(key, "outpost-iridium-mt/1" ‖ 0x00 ‖ context ‖ 0x00 ‖ all bytes before the tag)[0..8)
 * `context` (the gateway id) binds a message to one site even when keys are shared.
 */

const MT_VERSION = 1;
const MT_TAG_BYTES = 8;
const MAX_MT_BYTES = 270;
const DOMAIN = 'outpost-iridium-mt/1';

export type MtCommand = { kind: 'setpoint'; id: string; v: number | boolean; expiresInS?: number } | { kind: 'command'; name: string };

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
    if (c.kind === 'command') {
      const i = format.commands.indexOf(c.name);
      if (i < 0) throw new OutpostError('IRIDIUM_CODEC', `unknown MT command ${c.name}`);
      w.byte(0x03).uvarint(i);
      continue;
    }
    const i = format.datapoints.findIndex((d) => d.id === c.id);
    if (i < 0) throw new OutpostError('IRIDIUM_CODEC', `datapoint ${c.id} is not in the Iridium table`);
    const dp = format.datapoints[i]!;
    const scaled = dp.type === 'boolean' ? (c.v ? 1 : 0) : Math.round((c.v as number) * 10 ** dp.decimals);
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
    while (r.remaining > 0) {
      const op = r.byte();
      if (op === 0x03) {
        const i = r.uvarint();
        const name = this.format.commands[i];
        if (name === undefined) throw new Error(`unknown command index ${i}`);
        out.push({ kind: 'command', name });
        continue;
      }
      if (op !== 0x01 && op !== 0x02) throw new Error(`unknown op 0x${op.toString(16)}`);
      const i = r.uvarint();
      const dp = this.format.datapoints[i];
      if (!dp) throw new Error(`unknown datapoint index ${i}`);
      const raw = r.svarint();
      const v = dp.type === 'boolean' ? raw !== 0 : dp.decimals === 0 ? raw : raw / 10 ** dp.decimals;
      const cmd: MtCommand = { kind: 'setpoint', id: dp.id, v };
      if (op === 0x02) cmd.expiresInS = r.uvarint();
      out.push(cmd);
    }
    if (out.length === 0) throw new Error('no commands');
    return out;
  }
}
