import { EventEmitter } from 'node:events';
import { ModbusClient } from './client.js';
import { SerialPort } from 'serialport';
import type { Logger } from '../../runtime/log.js';
import { OutpostError } from '../../core/errors.js';
import './errors.js';
import { InFlight, describeRequest, failSoon, type LinkCallback, type ModbusLink, type ModbusRequest } from './transport.js';

export interface RtuSettings {
  path: string;
  baudRate: number;
  parity: 'none' | 'even' | 'odd';
  dataBits: 7 | 8;
  stopBits: 1 | 2;
}

/** Bits on the wire per character: start + data + parity + stop (Modbus over Serial Line §2.5.1). */
export function bitsPerChar(s: Pick<RtuSettings, 'parity' | 'dataBits' | 'stopBits'>): number {
  return 1 + s.dataBits + (s.parity === 'none' ? 0 : 1) + s.stopBits;
}

/**
 * t3.5: the silent interval that delimits RTU frames. Above 19200 baud the spec fixes
 * it at 1.75 ms instead of scaling with the baud rate (§2.5.1.1).
 */
export function interFrameGapMs(s: Pick<RtuSettings, 'baudRate' | 'parity' | 'dataBits' | 'stopBits'>): number {
  if (s.baudRate > 19200) return 1.75;
  return (3.5 * bitsPerChar(s) * 1000) / s.baudRate;
}

/** Expected response length for an RTU request frame (unit, fc, …, crc). */
function expectedLength(frame: Buffer): number {
  const fc = frame[1];
  switch (fc) {
    case 1:
    case 2:
      return 3 + Math.ceil(frame.readUInt16BE(4) / 8) + 2;
    case 3:
    case 4:
      return 3 + 2 * frame.readUInt16BE(4) + 2;
    default:
      return 8; // FC5, FC6, FC15, FC16 echo address + value/quantity
  }
}

const EXCEPTION_LENGTH = 5;
/** Largest RTU frame is 256 bytes (§2.5.1); keep a little slack, never more. */
const MAX_RX_BUFFER = 512;

/**
 * The framing half of an RTU port, handed to modbus-serial as its "port": it knows the
 * response length from the request it just sent, drops bytes left over from an earlier
 * (timed-out) answer, and passes one candidate frame up; modbus-serial checks CRC, unit
 * and function. modbus-serial's own buffered port never clears its buffer, so a late
 * answer from a dead meter could be taken for the next meter's answer.
 */
class FramedSerialPort extends EventEmitter {
  private rx = Buffer.alloc(0);
  private unit = -1;
  private fc = -1;
  private expected = 0;

  constructor(readonly serial: SerialPort) {
    super();
    serial.on('data', (chunk: Buffer) => this.onData(chunk));
    serial.on('error', (err) => this.emit('error', err));
    serial.on('close', () => this.emit('close'));
  }

  get isOpen(): boolean {
    return this.serial.isOpen;
  }

  open(cb: (err?: Error | null) => void): void {
    this.serial.open((err) => cb(err));
  }

  close(cb?: (err?: Error | null) => void): void {
    if (!this.serial.isOpen) return cb?.(null);
    this.serial.close((err) => cb?.(err));
  }

  write(frame: Buffer): void {
    this.rx = Buffer.alloc(0);
    this.unit = frame[0]!;
    this.fc = frame[1]!;
    this.expected = expectedLength(frame);
    this.serial.write(frame);
  }

  private onData(chunk: Buffer): void {
    this.rx = this.rx.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.rx, chunk]);
    if (this.rx.length > MAX_RX_BUFFER) this.rx = this.rx.subarray(this.rx.length - MAX_RX_BUFFER);
    // Resynchronise on the unit id we addressed: noise and stale bytes before it are dropped.
    let start = this.rx.indexOf(this.unit);
    while (start !== -1 && start + 1 < this.rx.length && this.rx[start + 1] !== this.fc && this.rx[start + 1] !== (this.fc | 0x80)) {
      start = this.rx.indexOf(this.unit, start + 1);
    }
    if (start === -1) {
      this.rx = Buffer.alloc(0);
      return;
    }
    if (start > 0) this.rx = this.rx.subarray(start);
    if (this.rx.length < 2) return;
    const need = this.rx[1] === (this.fc | 0x80) ? EXCEPTION_LENGTH : this.expected;
    if (this.rx.length < need) return;
    const frame = Buffer.from(this.rx.subarray(0, need));
    this.rx = Buffer.alloc(0);
    this.emit('data', frame);
  }
}

/**
 * One RS-485 line through a serial port. Opened once and shared through ctx.ports.
 * When the port disappears (USB adapter unplugged, the pty's peer gone) in-flight
 * requests fail at once with MODBUS_PORT_UNAVAILABLE and the line retries opening
 * every `reopenMs` (doubling up to 10×) until the device node is back.
 */
export class RtuLine implements ModbusLink {
  readonly maxInFlight = 1;
  readonly gapMs: number;
  readonly name: string;
  private client: ModbusClient | undefined;
  private port: FramedSerialPort | undefined;
  private state: 'closed' | 'opening' | 'open' = 'closed';
  private stopped = false;
  private reopenTimer: NodeJS.Timeout | undefined;
  private reopenDelay: number;
  private readonly pending = new InFlight();
  private lastError: string | undefined;
  /** Times the port was (re)opened, for status and tests. */
  opens = 0;

  constructor(
    readonly settings: RtuSettings,
    private readonly options: { reopenMs: number; log?: Logger },
  ) {
    this.name = `rtu:${settings.path}`;
    this.gapMs = interFrameGapMs(settings);
    this.reopenDelay = options.reopenMs;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  get error(): string | undefined {
    return this.lastError;
  }

  /** First open attempt; failures are not thrown but retried, so a missing adapter at boot is a degraded device, not a crashed gateway. */
  async start(): Promise<void> {
    await this.open();
  }

  private async open(): Promise<void> {
    if (this.stopped || this.state !== 'closed') return;
    this.state = 'opening';
    const s = this.settings;
    const serial = new SerialPort({ path: s.path, baudRate: s.baudRate, parity: s.parity, dataBits: s.dataBits, stopBits: s.stopBits, autoOpen: false });
    const port = new FramedSerialPort(serial);
    const client = new ModbusClient(port);
    // modbus-serial re-emits port errors; without a listener an 'error' event would crash the process.
    client.on('error', (err: unknown) => {
      this.lastError = (err as Error).message;
    });
    try {
      await new Promise<void>((resolve, reject) => client.open((err: Error | null) => (err ? reject(err) : resolve())));
    } catch (err) {
      this.state = 'closed';
      this.lastError = (err as Error).message;
      this.scheduleReopen();
      return;
    }
    if (this.stopped) {
      port.close();
      this.state = 'closed';
      return;
    }
    this.port = port;
    this.client = client;
    this.state = 'open';
    this.opens++;
    if (this.opens > 1) this.options.log?.info({ path: s.path }, 'serial port reopened');
    this.lastError = undefined;
    this.reopenDelay = this.options.reopenMs;
    port.once('close', () => this.onLost(port));
  }

  private onLost(port: FramedSerialPort): void {
    if (this.port !== port) return;
    this.port = undefined;
    this.client = undefined;
    this.state = 'closed';
    if (this.stopped) return;
    this.lastError = 'port closed (device unplugged?)';
    this.options.log?.warn({ path: this.settings.path }, 'serial port lost; reopening when it comes back');
    this.pending.failAll(new OutpostError('MODBUS_PORT_UNAVAILABLE', `${this.settings.path} closed while waiting for an answer`));
    this.scheduleReopen();
  }

  private scheduleReopen(): void {
    if (this.stopped || this.reopenTimer) return;
    const delay = this.reopenDelay;
    this.reopenDelay = Math.min(this.reopenDelay * 2, this.options.reopenMs * 10);
    this.reopenTimer = setTimeout(() => {
      this.reopenTimer = undefined;
      void this.open();
    }, delay);
  }

  execute(unit: number, request: ModbusRequest, timeoutMs: number, done: LinkCallback): void {
    const client = this.client;
    if (!client || this.state !== 'open') {
      return failSoon(
        done,
        new OutpostError(
          'MODBUS_PORT_UNAVAILABLE',
          `unit ${unit} ${describeRequest(request)} on ${this.settings.path}: port is not open${this.lastError ? ` (${this.lastError})` : ''}`,
        ),
      );
    }
    this.pending.issue(client, unit, request, timeoutMs, () => this.describe(unit, request), done);
  }

  /** Names a transaction in error messages (built only when there is an error). */
  private describe(unit: number, request: ModbusRequest): string {
    return `unit ${unit} ${describeRequest(request)} on ${this.settings.path}`;
  }

  async close(): Promise<void> {
    this.stopped = true;
    if (this.reopenTimer) clearTimeout(this.reopenTimer);
    this.reopenTimer = undefined;
    const port = this.port;
    this.port = undefined;
    this.client = undefined;
    this.state = 'closed';
    this.pending.failAll(new OutpostError('MODBUS_PORT_UNAVAILABLE', `${this.settings.path} was closed`));
    if (port) await new Promise<void>((resolve) => port.close(() => resolve()));
  }
}
