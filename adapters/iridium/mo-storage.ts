import { OutpostError } from '../../core/errors.js';
import './errors.js';
import { CODEC_EPOCH_MS, CREDIT_BYTES } from './codec.js';
import { ByteReader, ByteWriter } from './varint.js';

/**
 * The gateway's storage state as a small MO message (issue 19): storage went read-only (a full
 * disk) or recovered. The outbox cannot carry this alarm (it is in the storage that refuses
 * writes), so the sync fallback link hands it to the modem, which sends it in the alarm class.
 *
 * Wire format (first byte 4: 1/2 are readings, codec.ts; 3 an MT acknowledgement, mo-ack.ts):
 *   u8   kind (= 4)
 *   u8   state: 0 = ok (writable again), 1 = read-only
 *   uv   since: ms since 2020-01-01T00:00:00Z (CODEC_EPOCH_MS), when storage entered the state
 *   read-only only:
 *   uv   L = length of the error text in bytes, then L bytes of UTF-8
 *   nothing after it (trailing bytes are an error)
 *
 * The error text is cut so the message is one credit (50 bytes): its middle goes (replaced by
 * "…", at character boundaries), because a storage error names what failed first and why last
 * ("IO error: /var/lib/outpost/db/000123.log: No space left on device" becomes
 * "IO error: /v…g: No space left on device").
 */

export const MO_STORAGE_KIND = 4;
const STATE_CODES = ['ok', 'read-only'] as const;
/** One credit (Iridium bills per started 50 bytes). */
const MAX_STORAGE_BYTES = CREDIT_BYTES;

export type StorageStatus = { state: 'ok'; since: number } | { state: 'read-only'; error: string; since: number };

export function encodeStorageStatus(status: StorageStatus): Buffer {
  const code = STATE_CODES.indexOf(status.state);
  if (code < 0) throw new OutpostError('IRIDIUM_CODEC', `storage state ${JSON.stringify(status.state)} is not ok or read-only`);
  if (!Number.isSafeInteger(status.since) || status.since < CODEC_EPOCH_MS)
    throw new OutpostError('IRIDIUM_CODEC', `storage state time ${status.since} is not a time after 2020`);
  const w = new ByteWriter(MAX_STORAGE_BYTES)
    .byte(MO_STORAGE_KIND)
    .byte(code)
    .uvarint(status.since - CODEC_EPOCH_MS);
  if (status.state === 'read-only') {
    // The length varint takes one byte: the room left is below 128.
    const text = cutMiddle(Buffer.from(status.error, 'utf8'), MAX_STORAGE_BYTES - w.length - 1);
    w.uvarint(text.length).bytes(text);
  }
  return w.toBuffer();
}

/** The central side's half. */
export function decodeStorageStatus(bytes: Uint8Array): StorageStatus {
  const r = new ByteReader(bytes);
  const kind = r.byte();
  if (kind !== MO_STORAGE_KIND) throw new OutpostError('IRIDIUM_CODEC', `not a storage status message (first byte is ${kind}, not ${MO_STORAGE_KIND})`);
  const code = r.byte();
  const state = STATE_CODES[code];
  if (state === undefined) throw new OutpostError('IRIDIUM_CODEC', `unknown storage state code ${code}`);
  const since = CODEC_EPOCH_MS + r.uvarint();
  if (!Number.isSafeInteger(since)) throw new OutpostError('IRIDIUM_CODEC', 'storage state time out of range');
  let status: StorageStatus;
  if (state === 'read-only') {
    const length = r.uvarint();
    if (length > r.remaining) throw new OutpostError('IRIDIUM_CODEC', `error text of ${length} bytes in the ${r.remaining} left: message is truncated`);
    const text = r.bytes(length);
    let error: string;
    try {
      error = new TextDecoder('utf-8', { fatal: true }).decode(text);
    } catch (err) {
      throw new OutpostError('IRIDIUM_CODEC', 'the error text is not UTF-8', { cause: err });
    }
    status = { state, error, since };
  } else status = { state, since };
  if (r.remaining > 0) throw new OutpostError('IRIDIUM_CODEC', `${r.remaining} bytes after the storage status`);
  return status;
}

const ELLIPSIS = Buffer.from('…', 'utf8');

/** `text` in at most `max` bytes: a third from its start, "…", the rest from its end, never splitting a UTF-8 character. */
function cutMiddle(text: Buffer, max: number): Buffer {
  if (text.length <= max) return text;
  const room = max - ELLIPSIS.length;
  // 0b10xxxxxx is a continuation byte: a cut there would fall inside a character.
  const continuation = (i: number): boolean => i < text.length && (text[i]! & 0xc0) === 0x80;
  let headEnd = Math.floor(room / 3);
  while (headEnd > 0 && continuation(headEnd)) headEnd--;
  let tailStart = text.length - (room - Math.floor(room / 3));
  while (continuation(tailStart)) tailStart++;
  return Buffer.concat([text.subarray(0, headEnd), ELLIPSIS, text.subarray(tailStart)]);
}
