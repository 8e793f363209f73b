import { Duplex } from 'node:stream';

/**
 * Bounds the size of MQTT packets before the broker buffers them. The MQTT fixed header
 * (3.1.1 §2.2, 5.0 §2.1) is one type byte and a "remaining length" of 1-4 bytes, 7 bits
 * each, low first; a packet may announce up to 256 MB, and Aedes's parser would buffer
 * all of it. This stream reads only the headers as bytes pass and destroys the
 * connection as soon as a packet announces more than `maxPacketBytes`.
 */
export class PacketSizeGuard extends Duplex {
  private state: 'type' | 'length' | 'body' = 'type';
  private length = 0;
  private multiplier = 1;
  private lengthBytes = 0;
  private bodyLeft = 0;

  constructor(
    private readonly inner: Duplex,
    private readonly maxPacketBytes: number,
    private readonly onOversize: (announcedBytes: number) => void,
  ) {
    super({ allowHalfOpen: false });
    inner.on('data', (chunk: Buffer) => {
      const announced = this.scan(chunk);
      if (announced !== undefined) {
        this.onOversize(announced);
        this.destroy();
        return;
      }
      if (!this.push(chunk)) inner.pause();
    });
    inner.on('end', () => this.push(null));
    inner.on('error', (err) => this.destroy(err));
    inner.on('close', () => this.destroy());
  }

  /** Remote address of the wrapped socket, for the broker's loopback check. */
  get remoteAddress(): string | undefined {
    return (this.inner as { remoteAddress?: string }).remoteAddress;
  }

  /** Walks packet boundaries; returns the announced size of an oversized packet. */
  private scan(chunk: Buffer): number | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'type') {
        i++;
        this.state = 'length';
        this.length = 0;
        this.multiplier = 1;
        this.lengthBytes = 0;
      } else if (this.state === 'length') {
        const byte = chunk[i++]!;
        this.length += (byte & 0x7f) * this.multiplier;
        this.multiplier *= 128;
        this.lengthBytes++;
        if (byte & 0x80) {
          // §2.2.3: at most four length bytes; a fifth is a malformed packet.
          if (this.lengthBytes >= 4) return Number.POSITIVE_INFINITY;
          continue;
        }
        const total = 1 + this.lengthBytes + this.length;
        if (total > this.maxPacketBytes) return total;
        this.bodyLeft = this.length;
        this.state = this.bodyLeft === 0 ? 'type' : 'body';
      } else {
        const take = Math.min(this.bodyLeft, chunk.length - i);
        i += take;
        this.bodyLeft -= take;
        if (this.bodyLeft === 0) this.state = 'type';
      }
    }
    return undefined;
  }

  override _read(): void {
    this.inner.resume();
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.inner.destroyed) return callback();
    this.inner.write(chunk, encoding, callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.inner.end(callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.inner.destroy();
    callback(err);
  }
}
