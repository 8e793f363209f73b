import { OutpostError } from '../../core/errors.js';
import './errors.js';
import { MO_STORAGE_KIND } from './mo-storage.js';
import { ByteReader, ByteWriter } from './varint.js';

/**
 * Acknowledgement of MT commands, sent back as a (small) MO message: the central side
 * learns, per MT message (by its authenticated counter) and per op in it, whether the
 * command was applied or why it was refused. One credit carries ~15 acknowledgements.
 *
 * Wire format (first byte 3: MO messages with 1/2 are readings, see codec.ts; 4 the storage state, mo-storage.ts):
 *   u8   kind (= 3)
 *   then groups until the end of the message, one per MT message:
 *     uv   MT counter (as sent by the central side, mt.ts)
 *     uv   number of ops N (the ops of that MT message, in order)
 *     N ×  u8 status: an index into ACK_STATUS; 255 = another error
 */

const MO_ACK_KIND = 3;

/** Status codes on the wire (append only: the index is the contract with the central side). */
const ACK_STATUS = [
  'ok',
  'DP_UNKNOWN',
  'DP_NOT_ACTUATOR',
  'VALUE_TYPE',
  'SETPOINT_OUT_OF_RANGE',
  'SETPOINT_EXPIRED',
  'SETPOINT_FAILED',
  'ADAPTER_UNAVAILABLE',
  'SYNC_COMMAND_INVALID',
  'VALUE_MALFORMED',
] as const;
const OTHER = 255;

export interface MtAck {
  /** Counter of the MT message acknowledged. */
  counter: number;
  /** Per op of that message, in order: 'ok' or the error code ('OTHER' when not in ACK_STATUS). */
  results: string[];
}

export function encodeMoAck(acks: readonly MtAck[]): Buffer {
  if (acks.length === 0) throw new OutpostError('IRIDIUM_CODEC', 'nothing to acknowledge');
  const w = new ByteWriter(16).byte(MO_ACK_KIND);
  for (const a of acks) {
    if (!Number.isSafeInteger(a.counter) || a.counter < 0) throw new OutpostError('IRIDIUM_CODEC', `MT counter ${a.counter} is not a non-negative integer`);
    w.uvarint(a.counter).uvarint(a.results.length);
    for (const r of a.results) {
      const i = (ACK_STATUS as readonly string[]).indexOf(r);
      w.byte(i < 0 ? OTHER : i);
    }
  }
  return w.toBuffer();
}

/** The central side's half. */
export function decodeMoAck(bytes: Uint8Array): MtAck[] {
  const r = new ByteReader(bytes);
  if (r.byte() !== MO_ACK_KIND) throw new OutpostError('IRIDIUM_CODEC', 'not an MT acknowledgement (first byte is not 3)');
  const out: MtAck[] = [];
  while (r.remaining > 0) {
    const counter = r.uvarint();
    const n = r.uvarint();
    if (n > r.remaining) throw new OutpostError('IRIDIUM_CODEC', `acknowledgement of ${n} ops in ${r.remaining} bytes`);
    const results: string[] = [];
    for (let k = 0; k < n; k++) {
      const code = r.byte();
      results.push(code === OTHER ? 'OTHER' : (ACK_STATUS[code] ?? 'OTHER'));
    }
    out.push({ counter, results });
  }
  if (out.length === 0) throw new OutpostError('IRIDIUM_CODEC', 'empty acknowledgement');
  return out;
}

/** What an MO message is, by its first byte (4: the gateway's storage state, mo-storage.ts). */
export function moKind(bytes: Uint8Array): 'readings' | 'ack' | 'storage' | 'unknown' {
  const b = bytes[0];
  return b === 1 || b === 2 ? 'readings' : b === MO_ACK_KIND ? 'ack' : b === MO_STORAGE_KIND ? 'storage' : 'unknown';
}
