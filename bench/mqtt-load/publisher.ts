/**
 * Publisher worker: one raw MQTT connection. Encodes all its publications up front, connects,
 * reports 'ready', and on 'go' sends them: QoS 0 pipelined (big writes of many packets as
 * fast as the socket takes them), QoS 1 with a fixed window in flight (one more per PUBACK).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { MqttConnection } from './connection.js';
import { PINGRESP, PUBACK, encodePingreq, encodePublishes, type EncodedPublishes } from './frames.js';
import { PUB_ACKED, PUB_SENT, PUB_SLOTS, progressViews, type Command, type PublisherData, type PublisherResult, type WorkerReport } from './protocol.js';

const data = workerData as PublisherData;
const parent = parentPort!;
const { counters } = progressViews(data.progress);
const slot = data.publisher * PUB_SLOTS;
const report = (r: WorkerReport) => parent.postMessage(r);

function result(sent: number, acked: number, unexpectedAcks: number, lastWriteNs: bigint, lastAckNs: bigint, error?: string): PublisherResult {
  return { type: 'done', sent, acked, unexpectedAcks, lastWriteNs, lastAckNs, ...(error ? { error } : {}) };
}

/** Packet indexes where each QoS 0 write ends: whole packets, about `bytes` per write. */
function writeBoundaries(enc: EncodedPublishes, bytes: number): number[] {
  const total = enc.offsets.length - 1;
  const ends: number[] = [];
  let start = 0;
  for (let j = 1; j <= total; j++) {
    if (enc.offsets[j]! - enc.offsets[start]! >= bytes || j === total) {
      ends.push(j);
      start = j;
    }
  }
  return ends;
}

/**
 * QoS 0: write packet-aligned slices of the pre-encoded stream, waiting for 'drain' when the
 * socket is full; then a PINGREQ, whose PINGRESP says the broker has read everything before it.
 */
function publishPipelined(conn: MqttConnection, enc: EncodedPublishes): Promise<PublisherResult> {
  const total = enc.offsets.length - 1;
  const ends = writeBoundaries(enc, data.writeBytes);
  return new Promise((resolve) => {
    let sent = 0;
    let nextWrite = 0;
    let finished = false;
    const finish = (takenInNs: bigint, error?: string) => {
      if (finished) return;
      finished = true;
      resolve(result(sent, 0, 0, takenInNs, 0n, error));
    };
    conn.onFrame = (type) => {
      if (type === PINGRESP) finish(process.hrtime.bigint());
    };
    conn.onClose((reason) => finish(0n, `connection lost after ${sent} of ${total} written: ${reason}`));
    const pump = () => {
      while (nextWrite < ends.length) {
        const from = nextWrite === 0 ? 0 : ends[nextWrite - 1]!;
        const to = ends[nextWrite++]!;
        sent = to;
        Atomics.store(counters, slot + PUB_SENT, sent);
        const more = conn.socket.write(enc.bytes.subarray(enc.offsets[from], enc.offsets[to]));
        if (!more) return void conn.socket.once('drain', pump);
      }
      conn.socket.write(encodePingreq());
    };
    pump();
  });
}

/**
 * QoS 1: `window` publications in flight. Each received chunk's PUBACKs are counted first and
 * their refills go out as one write (the next packets are contiguous in the encoded stream).
 */
function publishWindowed(conn: MqttConnection, enc: EncodedPublishes): Promise<PublisherResult> {
  const total = enc.ids.length;
  const inFlight = new Uint8Array(65536);
  return new Promise((resolve) => {
    let next = 0;
    let acked = 0;
    let ackedInChunk = 0;
    let unexpectedAcks = 0;
    let lastWriteNs = 0n;
    let lastAckNs = 0n;
    let finished = false;
    const finish = (error?: string) => {
      if (finished) return;
      finished = true;
      resolve(result(next, acked, unexpectedAcks, lastWriteNs, lastAckNs, error));
    };
    const written = (err?: Error | null) => {
      if (!err) lastWriteNs = process.hrtime.bigint();
    };
    const send = (count: number) => {
      const end = next + count;
      for (let j = next; j < end; j++) inFlight[enc.ids[j]!] = 1;
      conn.socket.write(enc.bytes.subarray(enc.offsets[next], enc.offsets[end]), written);
      next = end;
      Atomics.store(counters, slot + PUB_SENT, next);
    };
    conn.onFrame = (type, _flags, buf, body) => {
      if (type !== PUBACK) return;
      const id = (buf[body]! << 8) | buf[body + 1]!;
      if (inFlight[id] === 1) {
        inFlight[id] = 0;
        ackedInChunk++;
      } else unexpectedAcks++;
    };
    conn.onChunkEnd = () => {
      if (ackedInChunk === 0) return;
      acked += ackedInChunk;
      lastAckNs = process.hrtime.bigint();
      const refill = Math.min(ackedInChunk, total - next);
      ackedInChunk = 0;
      if (refill > 0) send(refill);
      Atomics.store(counters, slot + PUB_ACKED, acked);
      if (acked === total) finish();
    };
    conn.onClose((reason) => finish(`connection lost after ${acked} of ${total} acknowledged: ${reason}`));
    send(Math.min(data.window, total));
  });
}

async function main(): Promise<void> {
  const enc = encodePublishes({ qos: data.qos, messages: data.messages, publisher: data.publisher, publishers: data.publishers, datapoints: data.datapoints });
  let conn: MqttConnection;
  try {
    conn = await MqttConnection.open(data.host, data.port, data.clientId);
  } catch (err) {
    report({ type: 'failed', error: (err as Error).message });
    return parent.close();
  }
  parent.on('message', (cmd: Command) => {
    if (cmd.type === 'go') void (data.qos === 0 ? publishPipelined(conn, enc) : publishWindowed(conn, enc)).then(report);
    // Connections stay open until the subscriber has everything, so no broker sees a
    // publisher leave while it is still working through that publisher's packets.
    else if (cmd.type === 'close') void conn.close().then(() => parent.close());
  });
  report({ type: 'ready' });
}

await main();
