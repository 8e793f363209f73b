/**
 * Raw MQTT bytes for tests of malformed packets, which libraries refuse to build: two-byte
 * integers, length-prefixed fields (MQTT 3.1.1 §1.5.3) and packets with a correct remaining
 * length (§2.2.3).
 */
export const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);

/** A length-prefixed field (§1.5.3); a string is written as UTF-8. */
export const field = (value: Buffer | string): Buffer => {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  return Buffer.concat([u16(bytes.length), bytes]);
};

export const bytes = (...parts: Array<Buffer | string | number[]>): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));

/** A packet with a correct remaining length (§2.2.3) for `parts`. */
export function packet(firstByte: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const length: number[] = [];
  let n = body.length;
  do {
    length.push((n % 128) | (n >= 128 ? 0x80 : 0));
    n = Math.floor(n / 128);
  } while (n > 0);
  return Buffer.concat([Buffer.from([firstByte, ...length]), body]);
}
