/**
 * What the load generator's main thread and its workers share. Live progress goes through a
 * SharedArrayBuffer (the main thread polls it to see when delivery stalls, without a message
 * per packet); the final figures of each worker come back as one message.
 */

export interface PublisherData {
  host: string;
  port: number;
  clientId: string;
  qos: 0 | 1;
  publisher: number;
  publishers: number;
  messages: number;
  datapoints: number;
  /** QoS 1: publications in flight (sent, not yet acknowledged) per connection. */
  window: number;
  /** QoS 0: bytes per write; each write is whole packets. */
  writeBytes: number;
  progress: SharedArrayBuffer;
}

export interface SubscriberData {
  host: string;
  port: number;
  clientId: string;
  qos: 0 | 1;
  filter: string;
  progress: SharedArrayBuffer;
  /** Where in the progress counters the subscriber's slots start (after the publishers'). */
  slot: number;
}

/** Main thread → worker. */
export type Command = { type: 'go' } | { type: 'close' };

export interface PublisherResult {
  type: 'done';
  sent: number;
  acked: number;
  /** PUBACKs whose packet id was not in flight (duplicates or unknown ids). */
  unexpectedAcks: number;
  /**
   * process.hrtime.bigint() (one clock for all threads) when the broker had taken in every
   * publication: QoS 0, when the PINGRESP to a PINGREQ sent after the last one came back (a peer
   * answers packets in order, and a write callback only says the bytes reached the kernel's
   * buffers); QoS 1, when the last publication was written.
   */
  lastWriteNs: bigint;
  /** The last PUBACK (QoS 1). */
  lastAckNs: bigint;
  error?: string;
}

export type WorkerReport = { type: 'ready'; detail?: string } | { type: 'failed'; error: string } | PublisherResult;

/** Int32 counters in the progress buffer: per publisher [sent, acked], then the subscriber's. */
export const PUB_SENT = 0;
export const PUB_ACKED = 1;
export const PUB_SLOTS = 2;
export const SUB_DELIVERED = 0;
/** Deliveries with RETAIN set: replays of retained values on subscribing, not live traffic. */
export const SUB_RETAINED = 1;
export const SUB_CLOSED = 2;
export const SUB_SLOTS = 3;

export interface ProgressViews {
  counters: Int32Array;
  /** [0]: hrtime (ns) of the subscriber's latest live delivery. */
  times: BigInt64Array;
}

export function progressBuffer(publishers: number): SharedArrayBuffer {
  const counters = (publishers * PUB_SLOTS + SUB_SLOTS) * 4;
  return new SharedArrayBuffer(8 + counters); // times first, so the BigInt64 view is aligned
}

export function progressViews(buf: SharedArrayBuffer): ProgressViews {
  return { times: new BigInt64Array(buf, 0, 1), counters: new Int32Array(buf, 8) };
}
