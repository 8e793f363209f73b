/**
 * MQTT 3.1.1 malformed-packet rules, checked on the raw bytes of every complete packet before
 * the broker sees it (MqttFraming's `inspect`): those mqtt-packet and Aedes miss, and the few
 * cheap ones they enforce without saying why, so that every refusal is logged with its reason.
 *
 * Raw bytes on purpose: mqtt-packet decodes strings with toString('utf8'), which turns
 * ill-formed UTF-8 into U+FFFD without a word, so only the bytes can tell.
 *
 * What is refused matches Debian Mosquitto 2.0 (see test/proof/mqtt-strictness.test.ts), except
 * the control characters and non-characters §1.5.3 lets a server refuse (MAY): Mosquitto
 * refuses them, we accept them. A packet whose lengths do not add up (a string running past
 * the end) is left to the parser, which refuses it; these rules only read inside `packet`.
 */
import { isUtf8 } from 'node:buffer';
import type { PacketViolation } from './framing.js';

/** Control packet types, MQTT 3.1.1 §2.2.1. */
enum PacketType {
  Connect = 1,
  Connack = 2,
  Publish = 3,
  Puback = 4,
  Pubrec = 5,
  Pubrel = 6,
  Pubcomp = 7,
  Subscribe = 8,
  Suback = 9,
  Unsubscribe = 10,
  Unsuback = 11,
  Pingreq = 12,
  Pingresp = 13,
  Disconnect = 14,
}

const PACKET_NAMES: readonly string[] = [
  'packet type 0',
  'CONNECT',
  'CONNACK',
  'PUBLISH',
  'PUBACK',
  'PUBREC',
  'PUBREL',
  'PUBCOMP',
  'SUBSCRIBE',
  'SUBACK',
  'UNSUBSCRIBE',
  'UNSUBACK',
  'PINGREQ',
  'PINGRESP',
  'DISCONNECT',
  'packet type 15',
];

/** Fixed-header flag bits each type must carry (§2.2.2, Table 2.2); unused for PUBLISH (DUP, QoS, RETAIN) and the reserved types 0 and 15. */
const REQUIRED_FLAGS: readonly number[] = [0, 0b0000, 0b0000, 0, 0b0000, 0b0000, 0b0010, 0b0000, 0b0010, 0b0000, 0b0010, 0b0000, 0b0000, 0b0000, 0b0000, 0];

const NUL = 0x00;
const SLASH = 0x2f;
const PLUS = 0x2b;
const HASH = 0x23;

const violation = (reason: string, connackReturnCode?: number): PacketViolation =>
  connackReturnCode === undefined ? { reason } : { reason, connackReturnCode };

/** Checks one complete packet (fixed header included) from a client; `first` is the connection's first packet. */
export function packetViolation(packet: Buffer, first: boolean): PacketViolation | undefined {
  const type = packet[0]! >> 4;
  // §3.1, [MQTT-3.1.0-1]: the first packet from the client MUST be CONNECT; [MQTT-3.1.0-2]: only one.
  if (first)
    return type === PacketType.Connect
      ? connectViolation(packet)
      : violation(`the first packet is ${PACKET_NAMES[type]}, not CONNECT (MQTT 3.1.1 §3.1, [MQTT-3.1.0-1])`);
  if (type === PacketType.Publish) return publishViolation(packet);
  const flags = packet[0]! & 0x0f;
  switch (type) {
    case PacketType.Connect:
      return violation('a second CONNECT on the connection (MQTT 3.1.1 §3.1, [MQTT-3.1.0-2])');
    case PacketType.Subscribe:
      return fixedHeaderViolation(type, flags) ?? subscribeViolation(packet);
    case PacketType.Unsubscribe:
      return fixedHeaderViolation(type, flags) ?? unsubscribeViolation(packet);
    case PacketType.Puback:
    case PacketType.Pubrec:
    case PacketType.Pubrel:
    case PacketType.Pubcomp:
      return fixedHeaderViolation(type, flags) ?? packetIdViolation(PACKET_NAMES[type]!, packet, bodyOffset(packet));
    case PacketType.Pingreq:
    case PacketType.Disconnect:
      return fixedHeaderViolation(type, flags);
    case PacketType.Connack:
    case PacketType.Suback:
    case PacketType.Unsuback:
    case PacketType.Pingresp:
      return violation(`${PACKET_NAMES[type]} is a server-to-client packet (MQTT 3.1.1 §2.2.1)`);
    default:
      return violation(`${PACKET_NAMES[type]} is reserved (MQTT 3.1.1 §2.2.1)`);
  }
}

/** §2.2.2, [MQTT-2.2.2-1]/[MQTT-2.2.2-2]: reserved flag bits MUST have their listed value, or the connection is closed. */
function fixedHeaderViolation(type: number, flags: number): PacketViolation | undefined {
  const required = REQUIRED_FLAGS[type]!;
  if (flags === required) return undefined;
  return violation(`${PACKET_NAMES[type]} with fixed-header flags ${bits(flags)}, must be ${bits(required)} (MQTT 3.1.1 §2.2.2, [MQTT-2.2.2-2])`);
}

const bits = (n: number): string => n.toString(2).padStart(4, '0');

/** Offset of the variable header: after the type byte and the 1-4 byte remaining length (§2.2.3), which the framing checked. */
function bodyOffset(packet: Buffer): number {
  let i = 1;
  while (i < 4 && (packet[i]! & 0x80) !== 0) i++;
  return i + 1;
}

/** A two-byte big-endian integer (§1.5.2); the caller checked that both bytes are inside the packet. */
const uint16 = (packet: Buffer, at: number): number => (packet[at]! << 8) | packet[at + 1]!;

/** End of the length-prefixed field (§1.5.3) at `at`, or undefined when its length or bytes run past `end`. */
function fieldEnd(packet: Buffer, at: number, end: number): number | undefined {
  if (at + 2 > end) return undefined;
  const fieldEnd = at + 2 + uint16(packet, at);
  return fieldEnd <= end ? fieldEnd : undefined;
}

/**
 * §1.5.3: a UTF-8 string MUST be well-formed UTF-8 [MQTT-1.5.3-1] and MUST NOT contain U+0000
 * [MQTT-1.5.3-2]; the server closes the connection on either. In well-formed UTF-8 the byte 0x00
 * is U+0000 and nothing else.
 */
function utf8Problem(packet: Buffer, start: number, end: number): string | undefined {
  if (!isUtf8(packet.subarray(start, end))) return 'is not valid UTF-8 (MQTT 3.1.1 §1.5.3, [MQTT-1.5.3-1])';
  for (let i = start; i < end; i++) if (packet[i] === NUL) return 'contains U+0000 (MQTT 3.1.1 §1.5.3, [MQTT-1.5.3-2])';
  return undefined;
}

/**
 * A topic name (PUBLISH, will topic): at least one character (§4.7.3, [MQTT-4.7.3-1]), a UTF-8
 * string (§1.5.3) and no wildcard (§3.3.2.1, [MQTT-3.3.2-2]). One pass over the bytes; the
 * UTF-8 validation (and its subarray) only for a topic with a non-ASCII byte.
 */
function topicNameProblem(packet: Buffer, start: number, end: number): string | undefined {
  if (start === end) return 'is empty (MQTT 3.1.1 §4.7.3, [MQTT-4.7.3-1])';
  let ascii = true;
  for (let i = start; i < end; i++) {
    const byte = packet[i]!;
    if (byte === NUL) return 'contains U+0000 (MQTT 3.1.1 §1.5.3, [MQTT-1.5.3-2])';
    if (byte === PLUS || byte === HASH) return `contains the wildcard '${String.fromCharCode(byte)}' (MQTT 3.1.1 §3.3.2.1, [MQTT-3.3.2-2])`;
    if (byte >= 0x80) ascii = false;
  }
  if (!ascii && !isUtf8(packet.subarray(start, end))) return 'is not valid UTF-8 (MQTT 3.1.1 §1.5.3, [MQTT-1.5.3-1])';
  return undefined;
}

/**
 * A topic filter (SUBSCRIBE, UNSUBSCRIBE): at least one character (§4.7.3), a UTF-8 string
 * (§1.5.3), '#' only as the whole last level (§4.7.1.2, [MQTT-4.7.1-2]) and '+' only as a whole
 * level (§4.7.1.3, [MQTT-4.7.1-3]).
 */
function topicFilterProblem(packet: Buffer, start: number, end: number): string | undefined {
  if (start === end) return 'is empty (MQTT 3.1.1 §4.7.3, [MQTT-4.7.3-1])';
  const utf8 = utf8Problem(packet, start, end);
  if (utf8) return utf8;
  for (let i = start; i < end; i++) {
    const byte = packet[i]!;
    const levelStart = i === start || packet[i - 1] === SLASH;
    const levelEnd = i === end - 1 || packet[i + 1] === SLASH;
    if (byte === HASH && !(levelStart && i === end - 1))
      return `${quoted(packet, start, end)} has '#' other than as the whole last level (MQTT 3.1.1 §4.7.1.2, [MQTT-4.7.1-2])`;
    if (byte === PLUS && !(levelStart && levelEnd))
      return `${quoted(packet, start, end)} has '+' other than as a whole level (MQTT 3.1.1 §4.7.1.3, [MQTT-4.7.1-3])`;
  }
  return undefined;
}

/** A valid UTF-8 string for a log line, shortened. */
function quoted(packet: Buffer, start: number, end: number): string {
  const text = packet.toString('utf8', start, Math.min(end, start + 100));
  return JSON.stringify(end - start > 100 ? `${text}…` : text);
}

/** §2.3.1, [MQTT-2.3.1-1]: the packet identifier is present and non-zero. */
function packetIdViolation(name: string, packet: Buffer, at: number): PacketViolation | undefined {
  if (at + 2 > packet.length)
    return violation(`${name} without its packet identifier (remaining length ${packet.length - bodyOffset(packet)}, MQTT 3.1.1 §2.3.1)`);
  if (uint16(packet, at) === 0) return violation(`${name} with packet identifier 0 (MQTT 3.1.1 §2.3.1, [MQTT-2.3.1-1])`);
  return undefined;
}

/** The hot path: topic length, topic bytes, QoS bits and, for QoS 1 and 2, the packet identifier. */
function publishViolation(packet: Buffer): PacketViolation | undefined {
  const qos = (packet[0]! >> 1) & 0b11;
  // §3.3.1.2, [MQTT-3.3.1-4]: both QoS bits set is malformed.
  if (qos === 3) return violation('PUBLISH with QoS 3 (MQTT 3.1.1 §3.3.1.2, [MQTT-3.3.1-4])');
  const at = bodyOffset(packet);
  const topicEnd = fieldEnd(packet, at, packet.length);
  if (topicEnd === undefined) return undefined; // the parser refuses a topic running past the end
  const problem = topicNameProblem(packet, at + 2, topicEnd);
  if (problem) return violation(`PUBLISH topic ${problem}`);
  return qos === 0 ? undefined : packetIdViolation(`PUBLISH QoS ${qos}`, packet, topicEnd);
}

/** §3.8: packet identifier, at least one filter [MQTT-3.8.3-3], each a valid filter with a requested QoS byte [MQTT-3.8.3-4]. */
function subscribeViolation(packet: Buffer): PacketViolation | undefined {
  const at = bodyOffset(packet);
  const noId = packetIdViolation('SUBSCRIBE', packet, at);
  if (noId) return noId;
  let i = at + 2;
  if (i === packet.length) return violation('SUBSCRIBE without a topic filter (MQTT 3.1.1 §3.8.3, [MQTT-3.8.3-3])');
  while (i < packet.length) {
    const filterEnd = fieldEnd(packet, i, packet.length);
    if (filterEnd === undefined || filterEnd === packet.length) return undefined; // the parser refuses a filter or its QoS byte running past the end
    const problem = topicFilterProblem(packet, i + 2, filterEnd);
    if (problem) return violation(`SUBSCRIBE topic filter ${problem}`);
    const options = packet[filterEnd]!;
    if (options > 2) return violation(`SUBSCRIBE requested QoS byte ${options}: reserved bits set or QoS 3 (MQTT 3.1.1 §3.8.3.1)`);
    i = filterEnd + 1;
  }
  return undefined;
}

/** §3.10: packet identifier, at least one filter [MQTT-3.10.3-2], each a valid filter. */
function unsubscribeViolation(packet: Buffer): PacketViolation | undefined {
  const at = bodyOffset(packet);
  const noId = packetIdViolation('UNSUBSCRIBE', packet, at);
  if (noId) return noId;
  let i = at + 2;
  if (i === packet.length) return violation('UNSUBSCRIBE without a topic filter (MQTT 3.1.1 §3.10.3, [MQTT-3.10.3-2])');
  while (i < packet.length) {
    const filterEnd = fieldEnd(packet, i, packet.length);
    if (filterEnd === undefined) return undefined; // the parser refuses a filter running past the end
    const problem = topicFilterProblem(packet, i + 2, filterEnd);
    if (problem) return violation(`UNSUBSCRIBE topic filter ${problem}`);
    i = filterEnd;
  }
  return undefined;
}

type ProtocolName = 'MQTT' | 'MQIsdp';

/** §3.1.2.1: "MQTT" for 3.1.1; "MQIsdp" is MQTT 3.1's name. Anything else is not a protocol we know. */
function protocolName(packet: Buffer, start: number, end: number): ProtocolName | undefined {
  const length = end - start;
  if (length !== 4 && length !== 6) return undefined;
  const name = packet.toString('latin1', start, end);
  return name === 'MQTT' || name === 'MQIsdp' ? name : undefined;
}

/** The protocol level each name goes with (§3.1.2.2): MQTT 3.1.1 is "MQTT" level 4, MQTT 3.1 is "MQIsdp" level 3. */
const LEVEL_OF: Readonly<Record<ProtocolName, number>> = { MQTT: 4, MQIsdp: 3 };

/** Connect flag bits, §3.1.2.3. */
enum ConnectFlag {
  Reserved = 0x01,
  Will = 0x04,
  WillQos = 0x18,
  WillRetain = 0x20,
  Password = 0x40,
  UserName = 0x80,
}

/**
 * CONNECT (§3.1): protocol name and level, connect flags, then the payload fields the flags
 * announce, in order (§3.1.3, [MQTT-3.1.3-1]): client id, will topic and message, user name,
 * password, and nothing after them.
 */
function connectViolation(packet: Buffer): PacketViolation | undefined {
  const header = fixedHeaderViolation(PacketType.Connect, packet[0]! & 0x0f);
  if (header) return header;
  const end = packet.length;
  const nameStart = bodyOffset(packet);
  const nameEnd = fieldEnd(packet, nameStart, end);
  // Name, level, flags and keep alive must all be there; the parser refuses a shorter CONNECT.
  if (nameEnd === undefined || nameEnd + 4 > end) return undefined;
  const name = protocolName(packet, nameStart + 2, nameEnd);
  // §3.1.2.1: with an unknown protocol name the server MAY disconnect; like Mosquitto, no CONNACK.
  if (name === undefined) return violation('CONNECT with an unknown protocol name, neither "MQTT" nor "MQIsdp" (MQTT 3.1.1 §3.1.2.1)');
  // The top bit is the bridge flag Mosquitto and Aedes accept from bridges; the level is the rest.
  const level = packet[nameEnd]! & 0x7f;
  if (level !== LEVEL_OF[name]) return unsupportedLevel(name, level);

  const flags = packet[nameEnd + 1]!;
  const flagProblem = connectFlagsProblem(flags);
  if (flagProblem) return violation(`CONNECT ${flagProblem}`);

  const idStart = nameEnd + 4;
  const idEnd = fieldEnd(packet, idStart, end);
  if (idEnd === undefined) return undefined;
  const idProblem = utf8Problem(packet, idStart + 2, idEnd);
  if (idProblem) return violation(`CONNECT client identifier ${idProblem}`);
  let at = idEnd;
  if (flags & ConnectFlag.Will) {
    const topicEnd = fieldEnd(packet, at, end);
    if (topicEnd === undefined) return undefined;
    const topicProblem = topicNameProblem(packet, at + 2, topicEnd);
    if (topicProblem) return violation(`CONNECT will topic ${topicProblem}`);
    const messageEnd = fieldEnd(packet, topicEnd, end);
    if (messageEnd === undefined) return undefined;
    at = messageEnd;
  }
  if (flags & ConnectFlag.UserName) {
    const userEnd = fieldEnd(packet, at, end);
    if (userEnd === undefined) return undefined;
    const userProblem = utf8Problem(packet, at + 2, userEnd);
    if (userProblem) return violation(`CONNECT user name ${userProblem}`);
    at = userEnd;
  }
  if (flags & ConnectFlag.Password) {
    const passwordEnd = fieldEnd(packet, at, end);
    if (passwordEnd === undefined) return undefined;
    at = passwordEnd;
  }
  if (at !== end) return violation(`CONNECT has ${end - at} byte(s) after its last payload field (MQTT 3.1.1 §3.1.3, [MQTT-3.1.3-1])`);
  // MQTT 3.1: a client identifier is 1 to 23 characters, else CONNACK 0x02 (identifier rejected).
  if (name === 'MQIsdp' && idEnd === idStart + 2)
    return violation('MQTT 3.1 CONNECT with an empty client identifier: MQTT 3.1 takes 1 to 23 characters (CONNACK 0x02, MQTT 3.1 §3.1)', 2);
  return undefined;
}

/** §3.1.2.2 [MQTT-3.1.2-2]: a level the server does not support gets CONNACK 0x01 and the connection is closed. */
function unsupportedLevel(name: ProtocolName, level: number): PacketViolation {
  const reason =
    name === 'MQTT' && level === 5
      ? 'CONNECT for MQTT 5 (protocol level 5): only MQTT 3.1.1 and 3.1 are supported (CONNACK 0x01, MQTT 3.1.1 §3.1.2.2, [MQTT-3.1.2-2])'
      : `CONNECT with protocol name "${name}" and level ${level}: MQTT 3.1.1 is "MQTT" level 4, MQTT 3.1 is "MQIsdp" level 3 (CONNACK 0x01, MQTT 3.1.1 §3.1.2.2, [MQTT-3.1.2-2])`;
  return violation(reason, 1);
}

/** §3.1.2.3-§3.1.2.9: the reserved bit, the will bits without a will, will QoS 3, a password without a user name. */
function connectFlagsProblem(flags: number): string | undefined {
  if (flags & ConnectFlag.Reserved) return 'reserved flag bit 0 is set (MQTT 3.1.1 §3.1.2.3, [MQTT-3.1.2-3])';
  const willQos = (flags & ConnectFlag.WillQos) >> 3;
  if (!(flags & ConnectFlag.Will)) {
    if (willQos !== 0) return `will QoS ${willQos} without the will flag (MQTT 3.1.1 §3.1.2.6, [MQTT-3.1.2-13])`;
    if (flags & ConnectFlag.WillRetain) return 'will retain without the will flag (MQTT 3.1.1 §3.1.2.7, [MQTT-3.1.2-15])';
  } else if (willQos === 3) {
    return 'will QoS 3 (MQTT 3.1.1 §3.1.2.6, [MQTT-3.1.2-14])';
  }
  if (flags & ConnectFlag.Password && !(flags & ConnectFlag.UserName)) return 'password flag without the user name flag (MQTT 3.1.1 §3.1.2.9, [MQTT-3.1.2-22])';
  return undefined;
}
