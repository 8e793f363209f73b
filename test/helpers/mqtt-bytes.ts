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

export const bytes = (...parts: Array<Buffer | string | number[]>): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));

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

export interface ConnectFields {
  name?: Buffer | string;
  level?: number;
  flags?: number;
  clientId?: Buffer | string;
  willTopic?: Buffer | string;
  user?: Buffer | string;
  trailing?: Buffer;
}

/** CONNECT with the payload fields its flags announce (§3.1.3); "MQTT" level 4, clean session by default. */
export function connectPacket(f: ConnectFields = {}): Buffer {
  const flags = f.flags ?? 0x02;
  const level = f.level ?? 4;
  // MQTT 5 has a properties length after keep alive (and before the will topic): empty here.
  const v5 = (level & 0x7f) === 5 ? Buffer.from([0]) : Buffer.alloc(0);
  const parts = [field(f.name ?? 'MQTT'), Buffer.from([level, flags]), u16(60), v5, field(f.clientId ?? 'client-1')];
  if (flags & 0x04) parts.push(v5, field(f.willTopic ?? 'will/topic'), field('gone'));
  if (flags & 0x80) parts.push(field(f.user ?? 'user'));
  if (flags & 0x40) parts.push(field('secret'));
  if (f.trailing) parts.push(f.trailing);
  return packet(0x10, ...parts);
}
