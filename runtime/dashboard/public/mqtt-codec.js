// The MQTT 3.1.1 packet codec of the dashboard's live client (mqtt-ws.js): the encoders of the
// packets a subscribe-only client sends and the decoder of what a server sends, cut from
// websocket frames (OASIS MQTT Version 3.1.1, 29 October 2014; sections cited as §).
// No DOM and no WebSocket: Node imports this file as it is (test/dashboard/mqtt-ws.test.ts).

/** Control packet types, §2.2.1. */
export const PacketType = Object.freeze({
  CONNECT: 1,
  CONNACK: 2,
  PUBLISH: 3,
  PUBACK: 4,
  PUBREC: 5,
  PUBREL: 6,
  PUBCOMP: 7,
  SUBSCRIBE: 8,
  SUBACK: 9,
  UNSUBSCRIBE: 10,
  UNSUBACK: 11,
  PINGREQ: 12,
  PINGRESP: 13,
  DISCONNECT: 14,
});

/** Largest packet the reader buffers (fixed header included) unless told otherwise: 1 MiB, the gateway's websocket frame limit. */
export const DEFAULT_MAX_PACKET_BYTES = 1024 * 1024;

/** §2.2.3: four length bytes of seven bits each. */
const MAX_REMAINING_LENGTH = 268_435_455;

/** CONNACK return codes 1-5, §3.2.2.3 (Table 3.1), worded for the person reading the console. */
export const CONNACK_REFUSALS = Object.freeze({
  1: 'unacceptable protocol version (the server does not speak MQTT 3.1.1)',
  2: 'client identifier rejected',
  3: 'server unavailable (e.g. too many connections)',
  4: 'bad user name or password',
  5: 'not authorized',
});

/**
 * The server broke the protocol or sent more than we buffer: the connection must close.
 * `code`: MALFORMED_PACKET, PACKET_TOO_LARGE, UNEXPECTED_PACKET or NOT_BINARY.
 */
export class MqttProtocolError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'MqttProtocolError';
    this.code = code;
  }
}

/** The server answered CONNECT with a non-zero return code (§3.2.2.3); it closes the connection next [MQTT-3.2.2-5]. */
export class ConnectionRefusedError extends Error {
  constructor(returnCode) {
    super(`MQTT connection refused by the gateway: ${CONNACK_REFUSALS[returnCode] ?? `unknown CONNACK return code ${returnCode} (reserved, §3.2.2.3)`}`);
    this.name = 'ConnectionRefusedError';
    this.returnCode = returnCode;
  }
}

const malformed = (why) => new MqttProtocolError('MALFORMED_PACKET', `malformed MQTT packet from the server: ${why}`);
const utf8 = new TextEncoder();
// §1.5.3: UTF-8 that is not well-formed is a protocol violation [MQTT-1.5.3-1], hence `fatal`.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

// ---- encoding (client to server) ----

/** §2.2.3: 7 bits per byte, least significant first, the top bit says another byte follows. */
export function encodeRemainingLength(n) {
  if (!Number.isInteger(n) || n < 0 || n > MAX_REMAINING_LENGTH) throw new RangeError(`remaining length ${n} is outside 0..${MAX_REMAINING_LENGTH} (§2.2.3)`);
  const out = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
}

/** §1.5.3: a two-byte big-endian length, then the UTF-8 bytes. */
function encodeString(s) {
  const bytes = utf8.encode(s);
  if (bytes.length > 0xffff) throw new RangeError(`string of ${bytes.length} UTF-8 bytes is longer than 65,535 (§1.5.3)`);
  return [bytes.length >> 8, bytes.length & 0xff, ...bytes];
}

function packet(firstByte, body) {
  return Uint8Array.from([firstByte, ...encodeRemainingLength(body.length), ...body]);
}

function checkPacketId(id) {
  // §2.3.1: a non-zero 16-bit identifier [MQTT-2.3.1-1].
  if (!Number.isInteger(id) || id < 1 || id > 0xffff) throw new RangeError(`packet identifier ${id} is outside 1..65535 (§2.3.1)`);
}

/**
 * CONNECT, §3.1: protocol name "MQTT", level 4 (3.1.1), Clean Session set (§3.1.2.4: no state
 * kept between connections, so nothing queues for a closed tab), Keep Alive in seconds
 * (§3.1.2.10), the client identifier as the only payload (no user name or password: the
 * gateway authenticates the websocket upgrade by the session cookie).
 */
export function encodeConnect({ clientId, keepaliveSeconds, cleanSession = true }) {
  if (!Number.isInteger(keepaliveSeconds) || keepaliveSeconds < 0 || keepaliveSeconds > 0xffff)
    throw new RangeError(`keep alive ${keepaliveSeconds} s is outside 0..65535 (§3.1.2.10)`);
  if (!cleanSession && clientId === '') throw new RangeError('a zero-byte client identifier needs Clean Session (§3.1.3.1)');
  const flags = cleanSession ? 0x02 : 0x00;
  return packet(0x10, [...encodeString('MQTT'), 4, flags, keepaliveSeconds >> 8, keepaliveSeconds & 0xff, ...encodeString(clientId)]);
}

/** SUBSCRIBE, §3.8: fixed-header flags 0010 [MQTT-3.8.1-1], a packet identifier, then each filter with its requested QoS. */
export function encodeSubscribe(packetId, filters) {
  checkPacketId(packetId);
  // §3.8.3: at least one topic filter [MQTT-3.8.3-3].
  if (filters.length === 0) throw new RangeError('SUBSCRIBE needs at least one topic filter (§3.8.3)');
  const body = [packetId >> 8, packetId & 0xff];
  for (const { topic, qos = 0 } of filters) {
    if (typeof topic !== 'string' || topic === '') throw new RangeError('a topic filter is a non-empty string (§4.7.3)');
    if (qos !== 0 && qos !== 1 && qos !== 2) throw new RangeError(`requested QoS ${qos} is not 0, 1 or 2 (§3.8.3.1)`);
    body.push(...encodeString(topic), qos);
  }
  return packet(0x82, body);
}

/** PUBACK, §3.4: the identifier of the QoS 1 PUBLISH it acknowledges. */
export function encodePuback(packetId) {
  checkPacketId(packetId);
  return Uint8Array.of(0x40, 2, packetId >> 8, packetId & 0xff);
}

/** PINGREQ, §3.12. */
export const PINGREQ = Uint8Array.of(0xc0, 0);
/** DISCONNECT, §3.14: a clean close, the last packet the client sends. */
export const DISCONNECT = Uint8Array.of(0xe0, 0);

// ---- decoding (server to client) ----

function expectFlags(type, flags, wanted) {
  // §2.2.2: reserved flag bits hold fixed values; anything else is malformed [MQTT-2.2.2-2].
  if (flags !== wanted) throw malformed(`${type} with fixed-header flags ${flags.toString(2).padStart(4, '0')} (§2.2.2)`);
}

function packetIdAt(body, at, what) {
  if (body.length < at + 2) throw malformed(`${what} too short for its packet identifier`);
  const id = (body[at] << 8) | body[at + 1];
  if (id === 0) throw malformed(`${what} with packet identifier 0 [MQTT-2.3.1-1]`);
  return id;
}

/** An acknowledgement of a client publication (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK): two bytes, a packet identifier. */
function decodeAck(name, flags, wantedFlags, body) {
  expectFlags(name, flags, wantedFlags);
  if (body.length !== 2) throw malformed(`${name} with a remaining length of ${body.length}, not 2`);
  return { type: name.toLowerCase(), packetId: packetIdAt(body, 0, name) };
}

/**
 * One complete packet: `first` is the fixed header's first byte, `body` the bytes after the
 * remaining length (a view: copy what must outlive the frame). Throws MqttProtocolError.
 */
export function decodePacket(first, body) {
  const type = first >> 4;
  const flags = first & 0x0f;
  switch (type) {
    case PacketType.CONNACK: {
      expectFlags('CONNACK', flags, 0);
      if (body.length !== 2) throw malformed(`CONNACK with a remaining length of ${body.length}, not 2 (§3.2.1)`);
      // §3.2.2.1: bits 7-1 of the acknowledge flags are reserved and 0.
      if (body[0] & 0xfe) throw malformed('CONNACK with reserved acknowledge flag bits set (§3.2.2.1)');
      return { type: 'connack', sessionPresent: (body[0] & 1) === 1, returnCode: body[1] };
    }
    case PacketType.PUBLISH: {
      const qos = (flags >> 1) & 3;
      // §3.3.1.2: both QoS bits set is malformed [MQTT-3.3.1-4].
      if (qos === 3) throw malformed('PUBLISH with QoS 3 [MQTT-3.3.1-4]');
      if (body.length < 2) throw malformed('PUBLISH too short for its topic name');
      const end = 2 + ((body[0] << 8) | body[1]);
      if (end > body.length) throw malformed('PUBLISH topic name runs past the end of the packet (§3.3.2.1)');
      let topic;
      try {
        topic = strictUtf8.decode(body.subarray(2, end));
      } catch (err) {
        throw Object.assign(malformed('PUBLISH topic name is not well-formed UTF-8 [MQTT-1.5.3-1]'), { cause: err });
      }
      // §4.7.3: at least one character [MQTT-4.7.3-1]; §3.3.2.1: no wildcards in a topic name [MQTT-3.3.2-2]; §1.5.3: no U+0000 [MQTT-1.5.3-2].
      if (topic === '' || /[#+\u0000]/.test(topic)) throw malformed(`PUBLISH topic name ${JSON.stringify(topic)} is empty or has a wildcard or U+0000`);
      const packetId = qos > 0 ? packetIdAt(body, end, 'PUBLISH') : undefined;
      return {
        type: 'publish',
        topic,
        qos,
        dup: (flags & 0x08) !== 0,
        retain: (flags & 0x01) !== 0,
        packetId,
        payload: body.subarray(qos > 0 ? end + 2 : end),
      };
    }
    case PacketType.PUBACK:
      return decodeAck('PUBACK', flags, 0, body);
    case PacketType.PUBREC:
      return decodeAck('PUBREC', flags, 0, body);
    case PacketType.PUBREL:
      // §3.6.1: PUBREL's flags are 0010 [MQTT-3.6.1-1].
      return decodeAck('PUBREL', flags, 2, body);
    case PacketType.PUBCOMP:
      return decodeAck('PUBCOMP', flags, 0, body);
    case PacketType.SUBACK: {
      expectFlags('SUBACK', flags, 0);
      if (body.length < 3) throw malformed('SUBACK without return codes (§3.9.3)');
      const returnCodes = Array.from(body.subarray(2));
      // §3.9.3: 0x00, 0x01, 0x02 (granted QoS) or 0x80 (failure); others are reserved [MQTT-3.9.3-2].
      const bad = returnCodes.find((c) => c > 2 && c !== 0x80);
      if (bad !== undefined) throw malformed(`SUBACK return code 0x${bad.toString(16)} is reserved [MQTT-3.9.3-2]`);
      return { type: 'suback', packetId: packetIdAt(body, 0, 'SUBACK'), returnCodes };
    }
    case PacketType.UNSUBACK:
      return decodeAck('UNSUBACK', flags, 0, body);
    case PacketType.PINGRESP:
      expectFlags('PINGRESP', flags, 0);
      if (body.length !== 0) throw malformed(`PINGRESP with a remaining length of ${body.length}, not 0 (§3.13)`);
      return { type: 'pingresp' };
    case PacketType.CONNECT:
    case PacketType.SUBSCRIBE:
    case PacketType.UNSUBSCRIBE:
    case PacketType.PINGREQ:
    case PacketType.DISCONNECT:
      // Packets only a client sends (§2.2.1, "Direction of flow").
      throw new MqttProtocolError('UNEXPECTED_PACKET', `the server sent packet type ${type}, which only a client sends (§2.2.1)`);
    default:
      // 0 and 15 are reserved (§2.2.1).
      throw malformed(`reserved packet type ${type} (§2.2.1)`);
  }
}

/**
 * Cuts the bytes of websocket frames into MQTT packets. A frame may hold part of a packet,
 * several packets, or both: packets are not aligned on frame boundaries [MQTT-6.0.0-2]. What is
 * buffered is at most one packet, whose size is known (and checked against `maxPacketBytes`)
 * from its fixed header before any of its body is kept.
 */
export class PacketReader {
  constructor({ maxPacketBytes = DEFAULT_MAX_PACKET_BYTES } = {}) {
    this.maxPacketBytes = maxPacketBytes;
    this.failure = undefined;
    this.reset();
  }

  reset() {
    /** The fixed header's first byte, -1 before it arrived. */
    this.first = -1;
    this.length = 0;
    this.multiplier = 1;
    this.lengthBytes = 0;
    /** The body being filled, once the remaining length is known. */
    this.body = undefined;
    this.filled = 0;
  }

  /** Bytes buffered towards the next packet (for tests and diagnostics). */
  get buffered() {
    return this.first < 0 ? 0 : 1 + this.lengthBytes + this.filled;
  }

  /**
   * Feeds one frame's bytes; returns the packets completed by them, in order. Throws
   * MqttProtocolError on a malformed or oversized packet; the reader stays failed (the
   * connection must close: the byte stream can no longer be trusted to be in step).
   */
  push(chunk) {
    if (this.failure) throw this.failure;
    const packets = [];
    try {
      let i = 0;
      while (i < chunk.length) {
        if (this.body === undefined) {
          const byte = chunk[i++];
          if (this.first < 0) {
            this.first = byte;
            continue;
          }
          // §2.2.3: remaining length, 7 bits per byte, low first, at most four bytes.
          this.length += (byte & 0x7f) * this.multiplier;
          this.lengthBytes++;
          if (byte & 0x80) {
            if (this.lengthBytes === 4) throw malformed('remaining length has a fifth byte (§2.2.3)');
            this.multiplier *= 128;
            continue;
          }
          const total = 1 + this.lengthBytes + this.length;
          if (total > this.maxPacketBytes)
            throw new MqttProtocolError(
              'PACKET_TOO_LARGE',
              `the server announced a packet of ${total} bytes, more than the ${this.maxPacketBytes} this client buffers`,
            );
          if (chunk.length - i >= this.length) {
            // The whole body is in this frame: decode it in place, no copy.
            packets.push(decodePacket(this.first, chunk.subarray(i, i + this.length)));
            i += this.length;
            this.reset();
            continue;
          }
          this.body = new Uint8Array(this.length);
          this.filled = 0;
        }
        const n = Math.min(this.body.length - this.filled, chunk.length - i);
        this.body.set(chunk.subarray(i, i + n), this.filled);
        this.filled += n;
        i += n;
        if (this.filled === this.body.length) {
          packets.push(decodePacket(this.first, this.body));
          this.reset();
        }
      }
    } catch (err) {
      this.failure = err;
      this.reset();
      throw err;
    }
    return packets;
  }
}
