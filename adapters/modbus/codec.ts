import { OutpostError } from '../../core/errors.js';

/**
 * Register codec: turns 16-bit Modbus registers into numbers and back.
 * Modbus itself only defines 16-bit big-endian registers (Modbus Application Protocol
 * V1.1b3 §4.2); how multi-register values are laid out is up to each vendor, hence
 * the word orders below, named after the byte order of a 32-bit value `0xAABBCCDD`:
 *  - ABCD: high word first, big-endian bytes (Eastron SDM, SunSpec)
 *  - CDAB: low word first (Carlo Gavazzi EM24 "LSW first", many PLCs)
 *  - BADC: high word first, bytes swapped in each word
 *  - DCBA: fully little-endian
 * For 64-bit values the same rule is applied to the four words.
 */
export const REGISTER_TYPES = ['int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'float32', 'float64', 'bool', 'string'] as const;
export type RegisterType = (typeof REGISTER_TYPES)[number];
export const WORD_ORDERS = ['ABCD', 'CDAB', 'BADC', 'DCBA'] as const;
export type WordOrder = (typeof WORD_ORDERS)[number];

/** Registers a value of `type` occupies (`length` only for strings). */
export function registerCount(type: RegisterType, length = 1): number {
  switch (type) {
    case 'int16':
    case 'uint16':
    case 'bool':
      return 1;
    case 'int32':
    case 'uint32':
    case 'float32':
      return 2;
    case 'int64':
    case 'uint64':
    case 'float64':
      return 4;
    case 'string':
      return length;
  }
}

/** Puts words into big-endian (ABCD) byte order, undoing the device's word order. */
export function wordsToBigEndian(words: ArrayLike<number>, order: WordOrder): Buffer {
  const n = words.length;
  const buf = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) {
    const w = words[order === 'CDAB' || order === 'DCBA' ? n - 1 - i : i]! & 0xffff;
    if (order === 'BADC' || order === 'DCBA') buf.writeUInt16LE(w, i * 2);
    else buf.writeUInt16BE(w, i * 2);
  }
  return buf;
}

/** Inverse of `wordsToBigEndian`: device words for a big-endian byte image. */
export function bigEndianToWords(buf: Buffer, order: WordOrder): number[] {
  const n = buf.length / 2;
  const words = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const w = order === 'BADC' || order === 'DCBA' ? buf.readUInt16LE(i * 2) : buf.readUInt16BE(i * 2);
    words[order === 'CDAB' || order === 'DCBA' ? n - 1 - i : i] = w;
  }
  return words;
}

/** The raw register value: integers as number (64-bit as bigint), floats as number, strings trimmed. */
export type RawValue = number | bigint | string;

export function decodeRaw(words: ArrayLike<number>, type: RegisterType, order: WordOrder): RawValue {
  const be = wordsToBigEndian(words, type === 'int16' || type === 'uint16' || type === 'bool' || type === 'string' ? 'ABCD' : order);
  switch (type) {
    case 'int16':
      return be.readInt16BE(0);
    case 'uint16':
    case 'bool':
      return be.readUInt16BE(0);
    case 'int32':
      return be.readInt32BE(0);
    case 'uint32':
      return be.readUInt32BE(0);
    case 'float32':
      return be.readFloatBE(0);
    case 'int64':
      return be.readBigInt64BE(0);
    case 'uint64':
      return be.readBigUInt64BE(0);
    case 'float64':
      return be.readDoubleBE(0);
    case 'string': {
      // Two ASCII characters per register, high byte first; padded with NUL or spaces (SunSpec §6.2).
      const end = be.indexOf(0);
      return be.toString('latin1', 0, end === -1 ? be.length : end).trimEnd();
    }
  }
}

/** Reads one raw value from `words` starting at `at`; the poll loop's hot path. */
export type RawDecoder = (words: ArrayLike<number>, at: number) => RawValue;

/** One 8-byte scratch for the decoders: the poll loop is single-threaded and each decode finishes before the next. */
const scratch = new DataView(new ArrayBuffer(8));

/**
 * A decoder specialised for one type and word order, equivalent to `decodeRaw` on the
 * same words (a test checks every type × order on random register images) but without
 * a Buffer and a word copy per value: ints are built from the words directly, floats
 * and 64-bit values through one shared scratch view.
 */
export function compileDecoder(type: RegisterType, order: WordOrder, length = registerCount(type)): RawDecoder {
  const swapBytes = order === 'BADC' || order === 'DCBA';
  const reverseWords = order === 'CDAB' || order === 'DCBA';
  /** Word `i` of the value in big-endian (ABCD) order, undoing the device's layout. */
  const n = registerCount(type, length);
  const be = (words: ArrayLike<number>, at: number, i: number): number => {
    const w = words[at + (reverseWords ? n - 1 - i : i)]! & 0xffff;
    return swapBytes ? ((w & 0xff) << 8) | (w >>> 8) : w;
  };
  switch (type) {
    case 'int16':
      // Single registers are big-endian on the wire whatever the word order (Modbus Application Protocol §4.2).
      return (words, at) => ((words[at]! & 0xffff) << 16) >> 16;
    case 'uint16':
    case 'bool':
      return (words, at) => words[at]! & 0xffff;
    case 'int32':
      return (words, at) => (be(words, at, 0) << 16) | be(words, at, 1) | 0;
    case 'uint32':
      return (words, at) => be(words, at, 0) * 0x10000 + be(words, at, 1);
    case 'float32':
      return (words, at) => {
        scratch.setUint16(0, be(words, at, 0));
        scratch.setUint16(2, be(words, at, 1));
        return scratch.getFloat32(0);
      };
    case 'int64':
    case 'uint64':
    case 'float64':
      return (words, at) => {
        for (let i = 0; i < 4; i++) scratch.setUint16(i * 2, be(words, at, i));
        return type === 'float64' ? scratch.getFloat64(0) : type === 'int64' ? scratch.getBigInt64(0) : scratch.getBigUint64(0);
      };
    case 'string':
      return (words, at) => decodeRaw(Array.prototype.slice.call(words, at, at + length) as number[], 'string', 'ABCD');
  }
}

const INT_RANGE: Partial<Record<RegisterType, [number, number]>> = {
  int16: [-0x8000, 0x7fff],
  uint16: [0, 0xffff],
  bool: [0, 1],
  int32: [-0x80000000, 0x7fffffff],
  uint32: [0, 0xffffffff],
};

/** Encodes a raw value (already unscaled) into device words; refuses values the type cannot hold. */
export function encodeRaw(raw: number, type: RegisterType, order: WordOrder): number[] {
  const range = INT_RANGE[type];
  if (range) {
    if (!Number.isInteger(raw) || raw < range[0] || raw > range[1]) {
      throw new OutpostError('SETPOINT_OUT_OF_RANGE', `${raw} does not fit a ${type} register (${range[0]}..${range[1]})`);
    }
  }
  const be = Buffer.alloc(registerCount(type) * 2);
  switch (type) {
    case 'int16':
      be.writeInt16BE(raw, 0);
      break;
    case 'uint16':
    case 'bool':
      be.writeUInt16BE(raw, 0);
      break;
    case 'int32':
      be.writeInt32BE(raw, 0);
      break;
    case 'uint32':
      be.writeUInt32BE(raw, 0);
      break;
    case 'float32':
      be.writeFloatBE(raw, 0);
      break;
    case 'float64':
      be.writeDoubleBE(raw, 0);
      break;
    case 'int64':
    case 'uint64': {
      if (!Number.isSafeInteger(raw) || (type === 'uint64' && raw < 0)) {
        throw new OutpostError('SETPOINT_OUT_OF_RANGE', `${raw} does not fit a ${type} register exactly`);
      }
      if (type === 'int64') be.writeBigInt64BE(BigInt(raw), 0);
      else be.writeBigUInt64BE(BigInt(raw), 0);
      break;
    }
    case 'string':
      throw new OutpostError('SETPOINT_FAILED', 'string registers are read-only in this adapter');
  }
  return bigEndianToWords(be, type === 'int16' || type === 'uint16' || type === 'bool' ? 'ABCD' : order);
}

/** True when `raw` equals one of the device's "not available" sentinels (e.g. SunSpec 0x8000, 0xFFFF). */
export function isSentinel(raw: RawValue, sentinels: readonly number[] | undefined): boolean {
  if (!sentinels || sentinels.length === 0 || typeof raw === 'string') return false;
  if (typeof raw === 'bigint') return sentinels.some((s) => BigInt(s) === raw || (s < 0 && BigInt.asUintN(64, BigInt(s)) === raw));
  return sentinels.includes(raw);
}

/**
 * Sentinels are written as the unsigned register image (0x8000), which for signed types
 * is the negative number; compare both forms so templates can say `nan: [0x8000]` for an int16.
 */
export function normaliseSentinels(type: RegisterType, sentinels: readonly number[] | undefined): number[] | undefined {
  if (!sentinels) return undefined;
  const out = new Set<number>(sentinels);
  for (const s of sentinels) {
    if (type === 'int16' && s >= 0x8000 && s <= 0xffff) out.add(s - 0x10000);
    if (type === 'int32' && s >= 0x80000000 && s <= 0xffffffff) out.add(s - 0x100000000);
  }
  return [...out];
}

/** CRC-16/MODBUS (Modbus over Serial Line V1.02 §6.2.2): poly 0xA001 reflected, init 0xFFFF. */
export function crc16(buf: Uint8Array): number {
  let crc = 0xffff;
  for (const byte of buf) {
    crc ^= byte;
    for (let i = 0; i < 8; i++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}
