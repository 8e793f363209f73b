import { OutpostError } from '../../core/errors.js';
import './errors.js';

/**
 * LEB128-style unsigned varints and zigzag signed integers, using Number arithmetic
 * (not 32-bit bitwise operators) so values up to 2^53 survive. Shared by the MO codec
 * and the MT command format.
 */
export class ByteWriter {
  private buf: Buffer;
  private len = 0;

  constructor(initial = 64) {
    this.buf = Buffer.alloc(initial);
  }

  private ensure(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.len + extra));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  byte(b: number): this {
    this.ensure(1);
    this.buf[this.len++] = b & 0xff;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }

  uvarint(n: number): this {
    if (!Number.isSafeInteger(n) || n < 0) throw new OutpostError('IRIDIUM_CODEC', `varint out of range: ${n}`);
    while (n >= 0x80) {
      this.byte((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    return this.byte(n);
  }

  svarint(n: number): this {
    return this.uvarint(zigzag(n));
  }

  get length(): number {
    return this.len;
  }

  toBuffer(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.len));
  }
}

export class ByteReader {
  offset = 0;
  constructor(private readonly buf: Uint8Array) {}

  get remaining(): number {
    return this.buf.length - this.offset;
  }

  byte(): number {
    if (this.offset >= this.buf.length) throw new OutpostError('IRIDIUM_CODEC', 'message is truncated');
    return this.buf[this.offset++]!;
  }

  bytes(n: number): Uint8Array {
    if (this.offset + n > this.buf.length) throw new OutpostError('IRIDIUM_CODEC', 'message is truncated');
    const out = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  uvarint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.byte();
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(result)) break;
        return result;
      }
      mul *= 0x80;
    }
    throw new OutpostError('IRIDIUM_CODEC', 'varint is too long');
  }

  svarint(): number {
    return unzigzag(this.uvarint());
  }
}

function zigzag(n: number): number {
  if (!Number.isSafeInteger(n)) throw new OutpostError('IRIDIUM_CODEC', `integer out of range: ${n}`);
  return n >= 0 ? n * 2 : -n * 2 - 1;
}

function unzigzag(z: number): number {
  return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
}
