import { EventEmitter } from 'node:events';
import { OutpostError } from '../../core/errors.js';
import './errors.js';

/**
 * Byte-level framing for the Iridium 9602/9603 AT interface (ISU AT Command Reference).
 *
 * Two modes:
 *  - line mode: modem output is `\r\n<text>\r\n` (verbose results, ATV1); the echo of a
 *    command ends with `\r`. Lines are split on CR or LF, non-printable bytes (line noise,
 *    garbage after power-up) are dropped, the unsolicited `SBDRING` is taken out of the
 *    stream wherever it appears and reported as a `ring` event.
 *  - binary frame mode (+SBDRB): `{2-byte length}{payload}{2-byte checksum}`, read by
 *    length, never by line, so payloads containing `\r\n`, `OK` or `SBDRING` are safe.
 *
 * Every wait has a timeout; every buffer is bounded.
 */

/** What the transport needs from a serial port (SerialPort, a pty, the mock binding). */
export interface ByteIo {
  write(data: Buffer): Promise<void>;
  /** Subscribes to incoming bytes; returns the unsubscribe function. */
  onData(handler: (chunk: Buffer) => void): () => void;
}

/** Adapts a `serialport` SerialPort (or SerialPortMock) to ByteIo. */
export function serialPortIo(port: {
  write(data: Buffer, cb: (err?: Error | null) => void): unknown;
  drain(cb: (err?: Error | null) => void): unknown;
  on(event: 'data', fn: (b: Buffer) => void): unknown;
  off(event: 'data', fn: (b: Buffer) => void): unknown;
}): ByteIo {
  return {
    write: (data) =>
      new Promise((resolve, reject) => {
        port.write(data, (err) => {
          if (err) return reject(err);
          port.drain((e) => (e ? reject(e) : resolve()));
        });
      }),
    onData: (handler) => {
      port.on('data', handler);
      return () => port.off('data', handler);
    },
  };
}

export interface AtTransportOptions {
  /** Longest line kept; longer ones are noise and are dropped. */
  maxLineLength?: number;
  /** Lines waiting for a reader; older ones are dropped beyond this. */
  maxQueuedLines?: number;
  /** Largest +SBDRB payload accepted (9602/9603 MT maximum: 270 bytes). */
  maxFrameBytes?: number;
}

interface LineWaiter {
  resolve(line: string): void;
  reject(err: Error): void;
}

interface FrameState {
  phase: 'seek' | 'body';
  need: number;
  parts: Buffer[];
  got: number;
  length: number;
  resolve(frame: { payload: Buffer; checksumOk: boolean; received: number; computed: number }): void;
  reject(err: Error): void;
}

const RING = 'SBDRING';

export class AtTransport extends EventEmitter {
  private partial = '';
  private readonly lines: string[] = [];
  private waiter: LineWaiter | undefined;
  private frame: FrameState | undefined;
  private pendingBinary: Buffer = Buffer.alloc(0);
  private readonly unsubscribe: () => void;
  /** Bytes dropped as noise (non-printable in line mode, unexpected before a frame). */
  garbageBytes = 0;
  droppedLines = 0;
  private readonly maxLine: number;
  private readonly maxLines: number;
  readonly maxFrameBytes: number;

  constructor(
    private readonly io: ByteIo,
    options: AtTransportOptions = {},
  ) {
    super();
    this.maxLine = options.maxLineLength ?? 256;
    this.maxLines = options.maxQueuedLines ?? 32;
    this.maxFrameBytes = options.maxFrameBytes ?? 270;
    this.unsubscribe = io.onData((chunk) => this.feed(chunk));
  }

  close(): void {
    this.unsubscribe();
    const err = new OutpostError('IRIDIUM_PROTOCOL', 'transport closed');
    this.waiter?.reject(err);
    this.waiter = undefined;
    this.frame?.reject(err);
    this.frame = undefined;
  }

  /** Forgets lines left over from an earlier (e.g. timed-out) command. */
  discardPending(): void {
    this.lines.length = 0;
    this.partial = '';
  }

  async writeText(text: string): Promise<void> {
    await this.io.write(Buffer.from(text, 'latin1'));
  }

  async writeRaw(data: Buffer): Promise<void> {
    await this.io.write(data);
  }

  /** Next complete line (never SBDRING), or IRIDIUM_TIMEOUT. */
  nextLine(timeoutMs: number, what: string): Promise<string> {
    const queued = this.lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.waiter) return Promise.reject(new OutpostError('INTERNAL', 'two readers on one AT transport'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new OutpostError('IRIDIUM_TIMEOUT', `no answer to ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = {
        resolve: (line) => {
          clearTimeout(timer);
          this.waiter = undefined;
          resolve(line);
        },
        reject: (err) => {
          clearTimeout(timer);
          this.waiter = undefined;
          reject(err);
        },
      };
    });
  }

  /**
   * Switches to frame mode and reads one +SBDRB frame. Call BEFORE writing the command,
   * so that no byte of the frame can be taken for a line. Before the length field,
   * CR/LF, the command echo, SBDRING and noise are skipped: the length's high byte is
   * 0 or 1 (at most 270 bytes), which none of those can be.
   */
  readFrame(timeoutMs: number): Promise<{ payload: Buffer; checksumOk: boolean; received: number; computed: number }> {
    if (this.frame) return Promise.reject(new OutpostError('INTERNAL', 'two frame readers on one AT transport'));
    this.partial = '';
    this.pendingBinary = Buffer.alloc(0);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.frame = undefined;
        reject(new OutpostError('IRIDIUM_TIMEOUT', `+SBDRB frame not complete within ${timeoutMs} ms`));
      }, timeoutMs);
      this.frame = {
        phase: 'seek',
        need: 2,
        parts: [],
        got: 0,
        length: 0,
        resolve: (f) => {
          clearTimeout(timer);
          this.frame = undefined;
          resolve(f);
        },
        reject: (err) => {
          clearTimeout(timer);
          this.frame = undefined;
          reject(err);
        },
      };
    });
  }

  private feed(chunk: Buffer): void {
    let data = chunk;
    while (data.length > 0) {
      if (this.frame) data = this.feedFrame(data);
      else {
        this.feedLines(data);
        return;
      }
    }
  }

  /** Consumes frame bytes; returns what is left after the frame (line mode again). */
  private feedFrame(chunk: Buffer): Buffer {
    const f = this.frame!;
    let data = this.pendingBinary.length ? Buffer.concat([this.pendingBinary, chunk]) : chunk;
    this.pendingBinary = Buffer.alloc(0);
    if (f.phase === 'seek') {
      let i = 0;
      while (i < data.length) {
        const b = data[i]!;
        if (b === 0 || b === 1) break;
        if (b === 0x0d || b === 0x0a) {
          i++;
          continue;
        }
        const rest = data.subarray(i, i + 8).toString('latin1');
        if (rest.startsWith(RING)) {
          this.emit('ring');
          i += RING.length;
          continue;
        }
        if (rest.toUpperCase() === 'AT+SBDRB') {
          i += 'AT+SBDRB'.length;
          continue;
        }
        // A "SBDRING" or echo split across chunks: wait for the rest of it.
        if (i + 8 > data.length && (RING.startsWith(rest) || 'AT+SBDRB'.startsWith(rest.toUpperCase()))) {
          this.pendingBinary = Buffer.from(data.subarray(i));
          return Buffer.alloc(0);
        }
        this.garbageBytes++;
        i++;
      }
      data = data.subarray(i);
      if (data.length < 2) {
        this.pendingBinary = Buffer.from(data);
        return Buffer.alloc(0);
      }
      f.length = data.readUInt16BE(0);
      if (f.length > this.maxFrameBytes) {
        f.reject(new OutpostError('IRIDIUM_PROTOCOL', `+SBDRB length ${f.length} exceeds ${this.maxFrameBytes} bytes`));
        return Buffer.alloc(0);
      }
      f.phase = 'body';
      f.need = f.length + 2;
      data = data.subarray(2);
    }
    const take = Math.min(f.need - f.got, data.length);
    f.parts.push(Buffer.from(data.subarray(0, take)));
    f.got += take;
    if (f.got < f.need) return Buffer.alloc(0);
    const body = Buffer.concat(f.parts);
    const payload = body.subarray(0, f.length);
    const received = body.readUInt16BE(f.length);
    const computed = sbdChecksum(payload);
    f.resolve({ payload, checksumOk: received === computed, received, computed });
    return data.subarray(take);
  }

  private feedLines(data: Buffer): void {
    for (const b of data) {
      if (b === 0x0d || b === 0x0a) {
        this.endLine();
        continue;
      }
      if (b < 0x20 || b > 0x7e) {
        this.garbageBytes++;
        continue;
      }
      if (this.partial.length >= this.maxLine) {
        this.garbageBytes++;
        continue;
      }
      this.partial += String.fromCharCode(b);
      // SBDRING may be glued to other text when it interrupts a line.
      if (this.partial.endsWith(RING)) {
        this.partial = this.partial.slice(0, -RING.length);
        this.emit('ring');
      }
    }
  }

  private endLine(): void {
    const line = this.partial.trim();
    this.partial = '';
    if (line.length === 0) return;
    if (line.length >= this.maxLine) {
      this.droppedLines++;
      return;
    }
    if (this.waiter) return this.waiter.resolve(line);
    if (this.lines.length >= this.maxLines) {
      this.lines.shift();
      this.droppedLines++;
    }
    this.lines.push(line);
  }
}

/** Least significant 16 bits of the sum of the payload bytes (ISU AT Command Reference, +SBDWB/+SBDRB). */
export function sbdChecksum(payload: Uint8Array): number {
  let sum = 0;
  for (const b of payload) sum += b;
  return sum & 0xffff;
}

/** Payload followed by its 2-byte checksum, high byte first. */
export function withChecksum(payload: Uint8Array): Buffer {
  const out = Buffer.alloc(payload.length + 2);
  out.set(payload, 0);
  out.writeUInt16BE(sbdChecksum(payload), payload.length);
  return out;
}
