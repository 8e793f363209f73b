/**
 * Subscriber worker: one raw MQTT connection subscribed at the run's QoS. Counts delivered
 * PUBLISH packets from their fixed header alone (no payload decoding) and, for QoS 1, answers
 * each with a PUBACK: all the PUBACKs for one received chunk go out in one write.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ANSWER_TIMEOUT_MS, MqttConnection } from './connection.js';
import { PUBLISH, SUBACK, encodePubacks, encodeSubscribe } from './frames.js';
import { SUB_CLOSED, SUB_DELIVERED, SUB_RETAINED, progressViews, type Command, type SubscriberData, type WorkerReport } from './protocol.js';

const data = workerData as SubscriberData;
const parent = parentPort!;
const { counters, times } = progressViews(data.progress);
const report = (r: WorkerReport) => parent.postMessage(r);

/** Counts deliveries and batches their PUBACKs; resolves with the granted QoS once SUBACK arrives. */
function subscribe(conn: MqttConnection): Promise<number> {
  let delivered = 0;
  let retained = 0;
  let deliveredInChunk = 0;
  // Packet ids of this chunk's QoS 1 deliveries; grown if a chunk ever holds more.
  let ackIds: Uint16Array<ArrayBuffer> = new Uint16Array(4096);
  let acks = 0;
  let granted: (code: number) => void = () => {};

  conn.onFrame = (type, flags, buf, body) => {
    if (type === PUBLISH) {
      // MQTT 3.1.1 §3.3.1.3: RETAIN is set only on replays for a new subscription, never on live traffic.
      if (flags & 1) retained++;
      else deliveredInChunk++;
      if ((flags >> 1) & 3) {
        const topicLength = (buf[body]! << 8) | buf[body + 1]!;
        const idAt = body + 2 + topicLength;
        if (acks === ackIds.length) ackIds = growTo(ackIds, acks * 2);
        ackIds[acks++] = (buf[idAt]! << 8) | buf[idAt + 1]!;
      }
    } else if (type === SUBACK) granted(buf[body + 2]!);
  };
  conn.onChunkEnd = () => {
    if (acks > 0) conn.socket.write(encodePubacks(ackIds, acks));
    acks = 0;
    if (deliveredInChunk > 0) {
      delivered += deliveredInChunk;
      deliveredInChunk = 0;
      Atomics.store(times, 0, process.hrtime.bigint());
      Atomics.store(counters, data.slot + SUB_DELIVERED, delivered);
    }
    Atomics.store(counters, data.slot + SUB_RETAINED, retained);
  };
  const suback = new Promise<number>((resolve, reject) => {
    granted = resolve;
    setTimeout(() => reject(new Error(`no SUBACK within ${ANSWER_TIMEOUT_MS / 1000} s`)), ANSWER_TIMEOUT_MS).unref();
  });
  conn.socket.write(encodeSubscribe(data.filter, data.qos));
  return suback;
}

function growTo(ids: Uint16Array, size: number): Uint16Array<ArrayBuffer> {
  const bigger = new Uint16Array(size);
  bigger.set(ids);
  return bigger;
}

async function main(): Promise<void> {
  let conn: MqttConnection;
  try {
    conn = await MqttConnection.open(data.host, data.port, data.clientId);
  } catch (err) {
    report({ type: 'failed', error: (err as Error).message });
    return parent.close();
  }
  conn.onClose(() => Atomics.store(counters, data.slot + SUB_CLOSED, 1));
  let code: number;
  try {
    code = await subscribe(conn);
  } catch (err) {
    report({ type: 'failed', error: (err as Error).message });
    conn.socket.destroy();
    return parent.close();
  }
  if (code === 0x80) {
    report({ type: 'failed', error: `SUBSCRIBE ${data.filter} refused (SUBACK 0x80)` });
    await conn.close();
    return parent.close();
  }
  parent.on('message', (cmd: Command) => {
    if (cmd.type === 'close') void conn.close().then(() => parent.close());
  });
  report({ type: 'ready', detail: `granted QoS ${code}` });
}

await main();
