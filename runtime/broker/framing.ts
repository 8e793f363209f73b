import { Duplex } from 'node:stream';

/** Why a connection's packet was refused; with `connackReturnCode`, a CONNACK carrying it is sent before the close. */
export interface PacketViolation {
  reason: string;
  /** MQTT 3.1.1 §3.2.2.3: e.g. 1 (unacceptable protocol level) for a CONNECT the server cannot serve. */
  connackReturnCode?: number;
}

/** Checks one complete packet (fixed header included); `first` is true for the connection's first packet. */
export type PacketInspector = (packet: Buffer, first: boolean) => PacketViolation | undefined;

export interface FramingOptions {
  /** Largest packet accepted, fixed header included; a bigger announced length drops the connection. */
  maxPacketBytes: number;
  /**
   * Complete packets handed to the broker per read. Aedes handles every packet of a read at
   * once and reads again only when all are done, so this bounds the work one connection has
   * in flight (a pipelining publisher waits on TCP back-pressure, not in our memory).
   */
  maxPacketsPerRead: number;
  inspect?: PacketInspector;
  /** Told once when the connection is dropped for a packet: its announced size, or the violation. */
  onRefused(refusal: { reason: string; announcedBytes?: number }): void;
}

const EMPTY = Buffer.alloc(0);

/** Bytes gathered in one turn before writes answer `false` (wait for 'drain'). */
const OUTGOING_HIGH_WATER = 256 * 1024;

type WriteCallback = (err?: Error | null) => void;

/**
 * Sits between a client's byte stream (TCP, TLS or websocket) and the broker:
 *
 * - inbound, it cuts the stream at MQTT packet boundaries (3.1.1 §2.2: a type byte and a
 *   "remaining length" of 1-4 bytes, 7 bits each, low first), refuses a packet that announces
 *   more than `maxPacketBytes` before buffering it, lets `inspect` see every complete packet,
 *   and hands the broker at most `maxPacketsPerRead` packets per read; the socket is paused
 *   while complete packets wait, so what a client can queue here is one socket read;
 * - outbound, what the broker writes in one turn of the event loop leaves in one write: the
 *   pieces of a packet together (one segment, one websocket frame), and a subscriber's
 *   deliveries of the turn together.
 */
export class MqttFraming extends Duplex {
  /** Bytes received and not yet handed to the broker: complete packets first, then a partial one. */
  private pending: Buffer = EMPTY;
  /** Lengths of the complete, inspected packets at the front of `pending`. */
  private readonly lengths: number[] = [];
  private lengthsHead = 0;
  /** Bytes of `pending` covered by `lengths`. */
  private scanned = 0;
  private packetsSeen = 0;
  private packetsHanded = 0;
  /** The broker asked for data (`_read`) and has not been given any since. */
  private wanted = false;
  private innerEnded = false;
  private refused = false;

  constructor(
    private readonly inner: Duplex,
    private readonly options: FramingOptions,
  ) {
    // One read's worth buffered at most: the broker's read() takes it all at once.
    super({ allowHalfOpen: false, readableHighWaterMark: 1 });
    inner.on('data', (chunk: Buffer) => this.received(chunk));
    inner.on('end', () => {
      this.innerEnded = true;
      this.pump();
    });
    inner.on('error', (err) => this.destroy(err));
    inner.on('close', () => this.destroy());
  }

  /** Remote address of the wrapped socket, for the broker's loopback check. */
  get remoteAddress(): string | undefined {
    return (this.inner as { remoteAddress?: string }).remoteAddress;
  }

  private received(chunk: Buffer): void {
    if (this.refused) return;
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    if (!this.scan()) return;
    this.pump();
  }

  /** Finds the complete packets after `scanned`; false when the connection was refused. */
  private scan(): boolean {
    const buf = this.pending;
    for (;;) {
      const at = this.scanned;
      if (buf.length - at < 2) return true;
      // Remaining length, §2.2.3: at most four bytes.
      let length = 0;
      let multiplier = 1;
      let i = at + 1;
      for (;;) {
        if (i >= buf.length) return true;
        const byte = buf[i++]!;
        length += (byte & 0x7f) * multiplier;
        if ((byte & 0x80) === 0) break;
        multiplier *= 128;
        if (i - at - 1 >= 4)
          return this.refuse({ reason: 'malformed remaining length (a fifth length byte, MQTT 3.1.1 §2.2.3)', announcedBytes: Number.POSITIVE_INFINITY });
      }
      const total = i - at + length;
      if (total > this.options.maxPacketBytes) return this.refuse({ reason: 'packet too large', announcedBytes: total });
      if (buf.length - at < total) return true;
      const violation = this.options.inspect?.(buf.subarray(at, at + total), this.packetsSeen === 0);
      this.packetsSeen++;
      if (violation) return this.refuse({ reason: violation.reason }, violation.connackReturnCode);
      this.lengths.push(total);
      this.scanned = at + total;
    }
  }

  /** Hands complete packets to the broker while it wants them; reads the socket only when none wait. */
  private pump(): void {
    if (this.refused) return;
    while (this.wanted && this.lengthsHead < this.lengths.length) {
      let cut = 0;
      // The CONNECT alone first: what follows it waits in Aedes' pre-CONNACK queue, which is
      // short (queueLimit); after the CONNACK the broker reads again.
      const perRead = this.packetsHanded === 0 ? 1 : this.options.maxPacketsPerRead;
      const last = Math.min(this.lengths.length, this.lengthsHead + perRead);
      this.packetsHanded += last - this.lengthsHead;
      for (let k = this.lengthsHead; k < last; k++) cut += this.lengths[k]!;
      this.lengthsHead = last;
      if (this.lengthsHead === this.lengths.length) {
        this.lengths.length = 0;
        this.lengthsHead = 0;
      }
      const slice = this.pending.subarray(0, cut);
      this.pending = this.pending.length === cut ? EMPTY : this.pending.subarray(cut);
      this.scanned -= cut;
      this.wanted = this.push(slice);
    }
    if (this.lengthsHead < this.lengths.length) {
      this.inner.pause();
    } else if (this.innerEnded) {
      this.push(null);
    } else {
      this.inner.resume();
    }
  }

  private refuse(refusal: { reason: string; announcedBytes?: number }, connackReturnCode?: number): false {
    this.refused = true;
    this.pending = EMPTY;
    this.options.onRefused(refusal);
    if (connackReturnCode !== undefined && !this.inner.destroyed) {
      // CONNACK: type 2, remaining length 2, no session present, the return code (§3.2).
      this.inner.end(Buffer.from([0x20, 0x02, 0x00, connackReturnCode]), () => this.destroy());
      setTimeout(() => this.destroy(), 1000).unref();
    } else {
      this.destroy();
    }
    return false;
  }

  override _read(): void {
    this.wanted = true;
    this.pump();
  }

  /**
   * What the broker writes is gathered and sent at the end of the event loop's turn, in one
   * write: Aedes delivers each message from its own setImmediate callback and mqtt-packet writes
   * a packet in five or six pieces, so a subscriber's deliveries of one turn leave in one
   * syscall, without Node's per-piece stream bookkeeping (two Writables deep) on the way.
   * `false` (wait for 'drain') once the socket's buffer is full or a turn gathers more than
   * OUTGOING_HIGH_WATER bytes.
   */
  override write(chunk: Buffer | string, encoding?: BufferEncoding | WriteCallback, callback?: WriteCallback): boolean {
    if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    if (this.destroyed || this.inner.destroyed) {
      if (callback) process.nextTick(callback, new Error('connection closed'));
      return false;
    }
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, encoding ?? 'utf8') : chunk;
    this.outgoing.push(bytes);
    this.outgoingBytes += bytes.length;
    if (callback) this.outgoingCallbacks.push(callback);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushOutgoing);
    }
    if (this.innerBlocked || this.outgoingBytes >= OUTGOING_HIGH_WATER) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  /** Pieces are gathered per turn anyway (mqtt-packet corks around each packet). */
  override cork(): void {}
  override uncork(): void {}

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: WriteCallback): void {
    this.write(chunk, encoding);
    callback();
  }

  private outgoing: Buffer[] = [];
  private outgoingBytes = 0;
  private outgoingCallbacks: WriteCallback[] = [];
  private flushScheduled = false;
  /** The socket's buffer is full: wait for its 'drain'. */
  private innerBlocked = false;
  /** A write returned false: 'drain' is owed. */
  private needDrain = false;
  private readonly flushOutgoing = (): void => {
    this.flushScheduled = false;
    this.flushNow();
  };

  private flushNow(): void {
    if (this.outgoing.length === 0) return;
    const bytes = this.outgoing.length === 1 ? this.outgoing[0]! : Buffer.concat(this.outgoing, this.outgoingBytes);
    const callbacks = this.outgoingCallbacks;
    this.outgoing = [];
    this.outgoingBytes = 0;
    this.outgoingCallbacks = [];
    if (this.inner.destroyed) {
      for (const cb of callbacks) cb(new Error('connection closed'));
      return;
    }
    const written: WriteCallback | undefined =
      callbacks.length === 0
        ? undefined
        : (err) => {
            for (const cb of callbacks) cb(err);
          };
    const accepted = this.inner.write(bytes, written);
    if (!accepted) {
      if (!this.innerBlocked) {
        this.innerBlocked = true;
        this.inner.once('drain', this.innerDrained);
      }
    } else if (this.needDrain) {
      this.needDrain = false;
      this.emit('drain');
    }
  }

  private readonly innerDrained = (): void => {
    this.innerBlocked = false;
    if (this.needDrain && this.outgoingBytes < OUTGOING_HIGH_WATER) {
      this.needDrain = false;
      this.emit('drain');
    }
  };

  override _final(callback: WriteCallback): void {
    this.flushNow();
    this.inner.end(callback);
  }

  override _destroy(err: Error | null, callback: WriteCallback): void {
    // Aedes writes a refusing CONNACK and destroys the connection in the same turn: what was
    // gathered goes out first.
    this.flushNow();
    this.inner.destroy();
    callback(err);
  }
}
