/**
 * MQTT 3.1.1 byte-stream framing for the load generator: splits a TCP stream into packets by
 * fixed header + remaining length (no payload decoding), and pre-encodes the few packets the
 * tool sends. Everything per message is encoded before the timed part, so timing measures
 * the broker, not the encoder.
 */
import mqttPacket from 'mqtt-packet';

export const CONNACK = 2;
export const PUBLISH = 3;
export const PUBACK = 4;
export const SUBACK = 9;
export const PINGRESP = 13;

/** One complete packet: its type and flags (first byte), body at buf[body, end). */
export type FrameHandler = (type: number, flags: number, buf: Buffer, body: number, end: number) => void;

/**
 * Cuts a byte stream into MQTT packets. Packets may be split across chunks anywhere, even
 * inside the remaining-length field; the incomplete tail is kept for the next chunk.
 */
export class FrameReader {
  private pending: Buffer | undefined;

  constructor(private readonly onFrame: FrameHandler) {}

  push(chunk: Buffer): void {
    // Only the tail of the previous chunk is joined to the new one; frames are small, so the
    // copy is at most one chunk per chunk received.
    const buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    const pos = this.emitComplete(buf);
    if (pos < buf.length) this.pending = buf.subarray(pos);
  }

  /** Emits every complete frame in buf; returns where the first incomplete one starts. */
  private emitComplete(buf: Buffer): number {
    let pos = 0;
    while (pos < buf.length) {
      let p = pos + 1;
      let length = 0;
      let multiplier = 1;
      let byte: number;
      do {
        if (p >= buf.length) return pos;
        if (p - pos > 4) throw new Error('malformed MQTT remaining length (more than 4 bytes)');
        byte = buf[p++]!;
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
      } while (byte & 0x80);
      const end = p + length;
      if (end > buf.length) return pos;
      const first = buf[pos]!;
      this.onFrame(first >> 4, first & 0x0f, buf, p, end);
      pos = end;
    }
    return pos;
  }
}

export function encodeConnect(clientId: string): Buffer {
  // Clean session, no keepalive: a run is short and PINGREQ would only add noise.
  return mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 0 });
}

export function encodeSubscribe(filter: string, qos: 0 | 1): Buffer {
  return mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos }] });
}

export function encodePingreq(): Buffer {
  return mqttPacket.generate({ cmd: 'pingreq' });
}

export function encodeDisconnect(): Buffer {
  return mqttPacket.generate({ cmd: 'disconnect' });
}

/** PUBACKs for the given packet ids, back to back in one buffer (one write). */
export function encodePubacks(ids: Uint16Array, count: number): Buffer {
  const out = Buffer.allocUnsafe(count * 4);
  for (let i = 0; i < count; i++) {
    const id = ids[i]!;
    const o = i * 4;
    out[o] = PUBACK << 4;
    out[o + 1] = 2;
    out[o + 2] = id >> 8;
    out[o + 3] = id & 0xff;
  }
  return out;
}

/** A publisher's messages, encoded back to back: packet i is bytes[offsets[i], offsets[i + 1]). */
export interface EncodedPublishes {
  bytes: Buffer;
  offsets: Uint32Array;
  /** Packet id of message i (QoS 1; 0 for QoS 0). */
  ids: Uint16Array;
}

/** The id of a QoS 1 message: ids cycle 1..65535, so any window below 65535 never reuses one in flight. */
export function packetIdOf(i: number): number {
  return (i % 65535) + 1;
}

export interface PublishPlan {
  qos: 0 | 1;
  messages: number;
  /** Publisher index and count: message j of publisher p goes to datapoint (p + j * publishers) % datapoints. */
  publisher: number;
  publishers: number;
  datapoints: number;
}

export function encodePublishes(plan: PublishPlan): EncodedPublishes {
  const packets = new Array<Buffer>(plan.messages);
  const ids = new Uint16Array(plan.messages);
  for (let j = 0; j < plan.messages; j++) {
    const k = (plan.publisher + j * plan.publishers) % plan.datapoints;
    // A value unique across publishers; no "t": the gateway stamps the arrival time.
    const v = j * plan.publishers + plan.publisher;
    const messageId = plan.qos === 1 ? packetIdOf(j) : undefined;
    ids[j] = messageId ?? 0;
    packets[j] = mqttPacket.generate({
      cmd: 'publish',
      topic: `outpost/dp/bench.p${k}/value`,
      payload: Buffer.from(`{"v":${v}}`),
      qos: plan.qos,
      retain: false,
      dup: false,
      ...(messageId !== undefined ? { messageId } : {}),
    });
  }
  const offsets = new Uint32Array(plan.messages + 1);
  for (let j = 0; j < plan.messages; j++) offsets[j + 1] = offsets[j]! + packets[j]!.length;
  return { bytes: Buffer.concat(packets), offsets, ids };
}
