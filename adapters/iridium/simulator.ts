import { randomBytes } from 'node:crypto';
import type { ByteIo } from './at-transport.js';
import { sbdChecksum } from './at-transport.js';

/**
 * A 9602/9603 (RockBLOCK) simulator speaking the SBD AT dialect on the DEVICE end of a
 * byte stream: a pseudo-terminal (socat pair) or the serialport mock binding. Used by
 * the tests, the demo and anyone without hardware. Failure modes are injected through
 * its public fields and methods, and the "gateway" side (MO received, MT queued) is
 * observable.
 *
 * Output follows the verbose (ATV1) format of the ISU AT Command Reference:
 * `\r\n<text>\r\n`; the echo of a command line ends with `\r`; +SBDWB answers
 * `READY\r\n`, then `<status>\r\n\r\nOK\r\n` (no OK after status 1); +SBDRB sends the
 * binary frame then `\r\nOK\r\n`.
 */

export interface SimulatorOptions {
  /** Echo at power-up (the real modem echoes until ATE0). */
  echo?: boolean;
  /** Ignores everything for this long after start, like a RockBLOCK charging its supercapacitor. */
  bootSilenceMs?: number;
  /** +CSQ bars. */
  signal?: number;
  /** Delay before the +SBDIX answer (a real session takes ~10-60 s). */
  sessionDelayMs?: number;
  /** +SBDWB data timeout (the modem's is 60 s). */
  sbdwbTimeoutMs?: number;
  imei?: string;
  /** Entries kept in `received`, `sessions` and `commands` (oldest dropped), so a long-running demo stays small. */
  historyLimit?: number;
}

export interface ReceivedMo {
  momsn: number;
  bytes: Buffer;
}

export class IridiumSimulator {
  echo: boolean;
  signal: number;
  sessionDelayMs: number;
  sbdwbTimeoutMs: number;
  ringAlerts = false;
  imei: string;

  // ---- failure modes ----
  /** MO status codes for the next +SBDIX sessions, consumed in order (then 0). */
  readonly scriptedMoStatus: number[] = [];
  /** No satellite: +CSQ 0 and +SBDIX MO status 32. */
  noNetwork = false;
  /** The next N +SBDWB answer status 2 (checksum) whatever was sent. */
  badWriteChecksums = 0;
  /** The next N +SBDRB frames carry a wrong checksum. */
  badReadChecksums = 0;
  /** The next N responses have SBDRING inserted between their lines (and inside +SBDRB before the frame). */
  ringsMidResponse = 0;
  /** The next N responses are preceded and interleaved by noise bytes. */
  garbageResponses = 0;
  /** Commands (e.g. "AT+CSQ") answered with ERROR. */
  readonly errorCommands = new Set<string>();
  /** Stop answering at all (cable pulled). */
  mute = false;
  /** Largest MO size accepted by +SBDWB (340 on the 9602/9603); lower it to exercise status 3. */
  maxMoBytes = 340;
  /** Bytes of the next +SBDWB data lost on the line, so the modem times out (status 1). */
  dropWriteBytes = 0;

  // ---- modem state ----
  moBuffer: Buffer | null = null;
  mtBuffer: Buffer | null = null;
  momsn = 0;
  mtmsn = 0;
  // ---- "gateway" side ----
  readonly mtQueue: Buffer[] = [];
  readonly received: ReceivedMo[] = [];
  readonly sessions: Array<{ command: string; moStatus: number }> = [];
  readonly commands: string[] = [];

  private line = '';
  private binary: { n: number; parts: Buffer[]; got: number; timer: NodeJS.Timeout } | undefined;
  private readonly bootUntil: number;
  private readonly historyLimit: number;
  private readonly unsubscribe: () => void;
  private busy = false;
  private closed = false;

  constructor(
    private readonly io: ByteIo,
    options: SimulatorOptions = {},
  ) {
    this.echo = options.echo ?? true;
    this.signal = options.signal ?? 4;
    this.sessionDelayMs = options.sessionDelayMs ?? 0;
    this.sbdwbTimeoutMs = options.sbdwbTimeoutMs ?? 60_000;
    this.imei = options.imei ?? '300434060000000';
    this.historyLimit = options.historyLimit ?? 10_000;
    this.bootUntil = Date.now() + (options.bootSilenceMs ?? 0);
    this.unsubscribe = io.onData((chunk) => this.onBytes(chunk));
  }

  close(): void {
    this.closed = true;
    this.unsubscribe();
    if (this.binary) clearTimeout(this.binary.timer);
  }

  /** The gateway queues an MT message; with ring alerts on, the modem announces it. */
  queueMt(bytes: Uint8Array): void {
    this.mtQueue.push(Buffer.from(bytes));
    if (this.ringAlerts && !this.busy) this.send('SBDRING\r\n');
  }

  /** Sends an unsolicited SBDRING now (e.g. while a command is running). */
  ring(): void {
    this.send('SBDRING\r\n');
  }

  private remember<T>(list: T[], entry: T): void {
    list.push(entry);
    if (list.length > this.historyLimit) list.splice(0, list.length - this.historyLimit);
  }

  private send(data: string | Buffer): void {
    if (this.closed) return;
    void this.io.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data).catch(() => undefined);
  }

  private onBytes(chunk: Buffer): void {
    let data = chunk;
    while (data.length > 0) {
      if (this.binary) {
        const b = this.binary;
        if (this.dropWriteBytes > 0) {
          const drop = Math.min(this.dropWriteBytes, data.length);
          this.dropWriteBytes -= drop;
          data = data.subarray(drop);
          continue;
        }
        const take = Math.min(b.n + 2 - b.got, data.length);
        b.parts.push(Buffer.from(data.subarray(0, take)));
        b.got += take;
        data = data.subarray(take);
        if (b.got === b.n + 2) this.finishWrite();
        continue;
      }
      const i = data.indexOf(0x0d);
      if (i < 0) {
        this.line += data.toString('latin1').replace(/\n/g, '');
        if (this.line.length > 2048) this.line = ''; // bounded, like the modem's command buffer
        return;
      }
      this.line += data.subarray(0, i).toString('latin1').replace(/\n/g, '');
      data = data.subarray(i + 1);
      const cmd = this.line;
      this.line = '';
      this.onCommand(cmd);
    }
  }

  private respond(lines: string[], options: { ok?: boolean } = {}): void {
    const parts = lines.map((l) => `\r\n${l}\r\n`);
    if (options.ok !== false) parts.push('\r\nOK\r\n');
    this.emitResponse(parts.map((p) => Buffer.from(p, 'latin1')));
  }

  /** Writes response pieces with the injected noise and ring alerts. */
  private emitResponse(parts: Buffer[]): void {
    const out: Buffer[] = [];
    const garbage = this.garbageResponses > 0;
    if (garbage) this.garbageResponses--;
    const ring = this.ringsMidResponse > 0;
    if (ring) this.ringsMidResponse--;
    parts.forEach((p, i) => {
      if (garbage) out.push(noise());
      out.push(p);
      if (ring && i === 0) out.push(Buffer.from('SBDRING\r\n'));
    });
    if (garbage) out.push(noise());
    this.send(Buffer.concat(out));
  }

  private onCommand(raw: string): void {
    if (this.mute || Date.now() < this.bootUntil) return;
    const cmd = raw.trim();
    if (cmd === '') return;
    this.remember(this.commands, cmd);
    if (this.echo) this.send(`${raw}\r`);
    const upper = cmd.toUpperCase();
    if (this.errorCommands.has(upper)) return this.respond(['ERROR'], { ok: false });
    if (upper === 'AT' || upper === 'AT&K0' || upper === 'AT&K3' || upper === 'ATV1' || upper === 'AT*F') return this.respond([]);
    if (upper === 'ATE0' || upper === 'ATE1') {
      this.echo = upper === 'ATE1';
      return this.respond([]);
    }
    const mta = /^AT\+SBDMTA=([01])$/.exec(upper);
    if (mta) {
      this.ringAlerts = mta[1] === '1';
      return this.respond([]);
    }
    if (upper === 'AT+CGMR')
      return this.respond([
        'Call Processor Version: TA21004',
        'Modem DSP Version: 1.7 svn: 2358',
        'DBB Version: 0x0001 (ASIC)',
        'RFA Version: 0x0007 (SRFA2)',
        'NVM Version: KVS',
        'Hardware Version: BOOT07d2/9603NrvA-D/04/RAW0c',
        'BOOT Version: TA21004 (rev exported)',
      ]);
    if (upper === 'AT+CGSN') return this.respond([this.imei]);
    if (upper === 'AT+CGMM') return this.respond(['IRIDIUM 9600 Family SBD Transceiver']);
    if (upper === 'AT+CSQ') return this.respond([`+CSQ:${this.noNetwork ? 0 : this.signal}`]);
    const wb = /^AT\+SBDWB=(\d+)$/.exec(upper);
    if (wb) return this.startWrite(Number(wb[1]));
    if (upper === 'AT+SBDIX' || upper === 'AT+SBDIXA') return this.session(upper);
    if (upper === 'AT+SBDRB') return this.readBinary();
    const dd = /^AT\+SBDD([012])$/.exec(upper);
    if (dd) {
      if (dd[1] !== '1') this.moBuffer = null;
      if (dd[1] !== '0') this.mtBuffer = null;
      return this.respond(['0']);
    }
    return this.respond(['ERROR'], { ok: false });
  }

  private startWrite(n: number): void {
    // Size outside 1..340 is refused at once (ISU AT Command Reference, +SBDWB status 3).
    if (n < 1 || n > this.maxMoBytes) return this.emitResponse([Buffer.from('3\r\n\r\nOK\r\n')]);
    const timer = setTimeout(() => {
      this.binary = undefined;
      this.send('1\r\n'); // timeout: not followed by OK
    }, this.sbdwbTimeoutMs);
    this.binary = { n, parts: [], got: 0, timer };
    this.send('READY\r\n');
  }

  private finishWrite(): void {
    const b = this.binary!;
    clearTimeout(b.timer);
    this.binary = undefined;
    const all = Buffer.concat(b.parts);
    const payload = all.subarray(0, b.n);
    const ok = all.readUInt16BE(b.n) === sbdChecksum(payload);
    if (!ok || this.badWriteChecksums > 0) {
      if (ok) this.badWriteChecksums--;
      return this.emitResponse([Buffer.from('2\r\n\r\nOK\r\n')]);
    }
    this.moBuffer = Buffer.from(payload);
    this.emitResponse([Buffer.from('0\r\n\r\nOK\r\n')]);
  }

  private session(command: string): void {
    this.busy = true;
    const run = (): void => {
      this.busy = false;
      if (this.closed) return;
      let mo = this.scriptedMoStatus.length > 0 ? this.scriptedMoStatus.shift()! : this.noNetwork ? 32 : 0;
      if (mo === 0 && this.noNetwork) mo = 32;
      this.remember(this.sessions, { command, moStatus: mo });
      if (mo > 4) return this.respond([`+SBDIX: ${mo}, ${this.momsn}, 2, ${this.mtmsn}, 0, ${this.mtQueue.length}`]);
      if (this.moBuffer) this.remember(this.received, { momsn: this.momsn, bytes: this.moBuffer });
      const momsn = this.momsn;
      this.momsn = (this.momsn + 1) % 65536;
      const mt = this.mtQueue.shift();
      if (mt) {
        this.mtBuffer = mt;
        this.mtmsn = (this.mtmsn + 1) % 65536;
      }
      this.respond([`+SBDIX: ${mo}, ${momsn}, ${mt ? 1 : 0}, ${this.mtmsn}, ${mt ? mt.length : 0}, ${this.mtQueue.length}`]);
    };
    if (this.sessionDelayMs > 0) setTimeout(run, this.sessionDelayMs);
    else run();
  }

  private readBinary(): void {
    const payload = this.mtBuffer ?? Buffer.alloc(0);
    const frame = Buffer.alloc(payload.length + 4);
    frame.writeUInt16BE(payload.length, 0);
    payload.copy(frame, 2);
    let ck = sbdChecksum(payload);
    if (this.badReadChecksums > 0) {
      this.badReadChecksums--;
      ck = (ck + 1) & 0xffff;
    }
    frame.writeUInt16BE(ck, payload.length + 2);
    const parts: Buffer[] = [];
    if (this.ringsMidResponse > 0) {
      this.ringsMidResponse--;
      parts.push(Buffer.from('SBDRING\r\n'));
    }
    parts.push(frame, Buffer.from('\r\nOK\r\n'));
    this.send(Buffer.concat(parts));
  }
}

/** Line noise: control and high bytes, never CR/LF (a real noisy line would not form lines). */
function noise(): Buffer {
  const out = randomBytes(6);
  for (let i = 0; i < out.length; i++) {
    let b = out[i]!;
    if (b >= 0x20 && b <= 0x7e) b = b | 0x80;
    if (b === 0x0d || b === 0x0a) b = 0x00;
    out[i] = b;
  }
  return out;
}

/** Device-side ByteIo for a host `SerialPortMock` (after it is open): sees what the host writes, emits what the modem says. */
export function mockDeviceIo(hostPort: { port?: unknown }): ByteIo {
  const binding = hostPort.port as { write(b: Buffer): Promise<void>; emitData(b: Buffer): void; isOpen: boolean } | undefined;
  if (!binding) throw new Error('the mock port must be open before a device is attached');
  const handlers = new Set<(b: Buffer) => void>();
  const original = binding.write.bind(binding);
  binding.write = async (b: Buffer) => {
    await original(b);
    const copy = Buffer.from(b);
    setImmediate(() => {
      for (const h of handlers) h(copy);
    });
  };
  return {
    write: async (data) => {
      if (binding.isOpen) binding.emitData(data);
    },
    onData: (handler) => {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
  };
}
