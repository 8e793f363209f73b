/**
 * The load generator's own ceiling: a TCP "broker" that does the least an MQTT peer can.
 * It answers CONNECT (CONNACK), SUBSCRIBE (SUBACK, QoS as asked), QoS 1 PUBLISH (PUBACK) and PINGREQ,
 * and otherwise reads and discards. PUBLISH packets are relayed byte for byte to any
 * subscribed connection (no topic matching), so with a subscriber it measures the whole tool.
 * Runs as its own process pinned like a broker; prints `listening <port>`.
 */
import { createServer, type Socket } from 'node:net';
import { CONNACK, FrameReader, PUBACK, PUBLISH, SUBACK } from './frames.js';

const CONNECT = 1;
const SUBSCRIBE = 8;
const PINGREQ = 12;
const PINGRESP = 13;
const subscribers = new Set<Socket>();

/** Contiguous runs of PUBLISH bytes in the current chunk (usually one), relayed in one write. */
interface Run {
  buf: Buffer;
  start: number;
  end: number;
}

function serve(socket: Socket): void {
  socket.setNoDelay(true);
  let acks: number[] = [];
  let runs: Run[] = [];
  const reader = new FrameReader((type, flags, buf, body, end) => {
    if (type === PUBLISH) {
      if ((flags >> 1) & 3) {
        const idAt = body + 2 + ((buf[body]! << 8) | buf[body + 1]!);
        acks.push(PUBACK << 4, 2, buf[idAt]!, buf[idAt + 1]!);
      }
      if (subscribers.size === 0) return;
      const start = body - headerLength(end - body);
      const last = runs[runs.length - 1];
      if (last && last.buf === buf && last.end === start) last.end = end;
      else runs.push({ buf, start, end });
    } else if (type === PINGREQ) socket.write(Buffer.from([PINGRESP << 4, 0]));
    else if (type === CONNECT) socket.write(Buffer.from([CONNACK << 4, 2, 0, 0]));
    else if (type === SUBSCRIBE) {
      subscribers.add(socket);
      // Body: packet id, then (topic length, topic, requested QoS); one filter is all the tool sends.
      const qos = buf[end - 1]! & 3;
      socket.write(Buffer.from([SUBACK << 4, 3, buf[body]!, buf[body + 1]!, qos]));
    }
  });
  socket.on('data', (chunk: Buffer) => {
    reader.push(chunk);
    if (acks.length > 0) socket.write(Buffer.from(acks));
    if (runs.length > 0) {
      const bytes = Buffer.concat(runs.map((r) => r.buf.subarray(r.start, r.end)));
      for (const sub of subscribers) sub.write(bytes);
    }
    acks = [];
    runs = [];
  });
  socket.on('error', () => socket.destroy());
  socket.on('close', () => subscribers.delete(socket));
}

/** Bytes of fixed header in front of a body of this length (1 + remaining-length bytes). */
function headerLength(bodyLength: number): number {
  return bodyLength < 128 ? 2 : bodyLength < 16_384 ? 3 : bodyLength < 2_097_152 ? 4 : 5;
}

const server = createServer(serve);
server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.stdout.write(`listening ${typeof addr === 'object' && addr ? addr.port : 0}\n`);
});
process.on('SIGTERM', () => process.exit(0));
