import { EventEmitter } from 'node:events';
import { OutpostError } from '../../core/errors.js';
import './errors.js';
import { type AtTransport, withChecksum } from './at-transport.js';

/**
 * Driver for the Iridium 9602/9603 (RockBLOCK) AT command set. References are to the
 * Iridium "ISU AT Command Reference" (SBD commands, section +SBDxx) and the RockBLOCK
 * developer notes. One command at a time (the modem is half-duplex on the AT interface).
 */

export interface ModemTimeouts {
  /** Ordinary AT commands. */
  atMs: number;
  /** Keep sending `AT` this long while the supercapacitor charges (RockBLOCK: up to ~60 s). */
  startupMs: number;
  /** Between `AT` probes during start-up. */
  startupProbeMs: number;
  /** +SBDIX/+SBDIXA: a session can take a minute or more. */
  sessionMs: number;
  /** Time to wait for the status after sending +SBDWB data (the modem itself waits 60 s). */
  sbdwbMs: number;
  /** Grace for the `OK` after a +SBDRB frame (the reference says no result code follows; RockBLOCKs send one). */
  sbdrbOkMs: number;
}

const DEFAULT_TIMEOUTS: ModemTimeouts = {
  atMs: 5_000,
  startupMs: 60_000,
  startupProbeMs: 1_000,
  sessionMs: 120_000,
  sbdwbMs: 65_000,
  sbdrbOkMs: 1_000,
};

/** +SBDIX response (ISU AT Command Reference, +SBDIX). */
export interface SbdixResult {
  moStatus: number;
  momsn: number;
  /** 0 no message, 1 message received, 2 error during mailbox check. */
  mtStatus: number;
  mtmsn: number;
  mtLength: number;
  mtQueued: number;
}

/** +SBDWB result codes (ISU AT Command Reference, +SBDWB). */
const SBDWB_STATUS = { OK: 0, TIMEOUT: 1, BAD_CHECKSUM: 2, WRONG_SIZE: 3 } as const;

const MAX_MO_BYTES = 340;
const MAX_MT_BYTES = 270;

export interface ModemInfo {
  firmware: string[];
  imei?: string;
  model?: string;
}

export interface ModemOptions {
  timeouts?: Partial<ModemTimeouts>;
  /** Send ATE0 (echo off). The driver copes with echo either way. */
  echoOff?: boolean;
  /** AT+SBDMTA=1: unsolicited SBDRING on ring alerts. */
  ringAlerts?: boolean;
  /** Aborts start-up probing and waits. */
  signal?: AbortSignal;
}

export class IridiumModem extends EventEmitter {
  readonly timeouts: ModemTimeouts;
  private busy: Promise<unknown> = Promise.resolve();
  info: ModemInfo = { firmware: [] };

  constructor(
    readonly transport: AtTransport,
    private readonly options: ModemOptions = {},
  ) {
    super();
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    transport.on('ring', () => this.emit('ring'));
  }

  /** Runs `fn` when no other command is in progress: one AT command at a time. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.busy.then(fn, fn);
    this.busy = run.catch(() => undefined);
    return run;
  }

  /**
   * Writes `AT<cmd>\r` and collects lines until OK (resolves), ERROR (IRIDIUM_PROTOCOL)
   * or `until` matches. Echo lines are skipped, so the driver works with ATE0 and ATE1.
   */
  private async exchange(cmd: string, timeoutMs: number, until?: (line: string) => boolean): Promise<string[]> {
    const t = this.transport;
    t.discardPending();
    await t.writeText(`${cmd}\r`);
    return this.collect(cmd, timeoutMs, until);
  }

  private async collect(cmd: string, timeoutMs: number, until?: (line: string) => boolean): Promise<string[]> {
    const lines: string[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new OutpostError('IRIDIUM_TIMEOUT', `no final result for ${cmd} within ${timeoutMs} ms`);
      const line = await this.transport.nextLine(left, cmd);
      if (line.toUpperCase() === cmd.toUpperCase()) continue; // echo (ATE1)
      if (until?.(line)) {
        lines.push(line);
        return lines;
      }
      if (line === 'OK') return lines;
      if (line === 'ERROR') throw new OutpostError('IRIDIUM_PROTOCOL', `${cmd} answered ERROR`, { details: { lines } });
      if (lines.length >= 16) throw new OutpostError('IRIDIUM_PROTOCOL', `${cmd}: too many response lines`);
      lines.push(line);
    }
  }

  /** A command whose answer ends with OK. */
  command(cmd: string, timeoutMs = this.timeouts.atMs): Promise<string[]> {
    return this.exclusive(() => this.exchange(cmd, timeoutMs));
  }

  /**
   * Start-up (RockBLOCK developer guide): `AT` until OK while the supercapacitor
   * charges, then echo, flow control off (3-wire UART), ring alerts, identity.
   */
  async init(): Promise<ModemInfo> {
    const deadline = Date.now() + this.timeouts.startupMs;
    for (;;) {
      this.options.signal?.throwIfAborted();
      try {
        await this.command('AT', Math.min(this.timeouts.atMs, this.timeouts.startupProbeMs));
        break;
      } catch (err) {
        if (!(err instanceof OutpostError) || err.code !== 'IRIDIUM_TIMEOUT' || Date.now() >= deadline) {
          if (err instanceof OutpostError && err.code === 'IRIDIUM_TIMEOUT') {
            throw new OutpostError('IRIDIUM_TIMEOUT', `modem did not answer AT within ${this.timeouts.startupMs} ms (power, wiring, baud rate?)`);
          }
          throw err;
        }
      }
    }
    // A late OK to an earlier, timed-out probe would shift every later answer by one: let it arrive, then drop it.
    await new Promise((r) => setTimeout(r, Math.min(100, this.timeouts.startupProbeMs)));
    this.transport.discardPending();
    if (this.options.echoOff !== false) await this.command('ATE0');
    await this.command('AT&K0');
    await this.command(`AT+SBDMTA=${this.options.ringAlerts === false ? 0 : 1}`);
    const firmware = await this.command('AT+CGMR');
    const imei = (await this.command('AT+CGSN')).find((l) => /^\d{15}$/.test(l));
    const model = (await this.command('AT+CGMM'))[0];
    this.info = { firmware, imei, model };
    return this.info;
  }

  /** +CSQ: 0..5 bars (ISU AT Command Reference, +CSQ). */
  async signalQuality(): Promise<number> {
    const lines = await this.command('AT+CSQ');
    const m = lines.map((l) => /\+CSQ:\s*(\d)/.exec(l)).find(Boolean);
    if (!m) throw new OutpostError('IRIDIUM_PROTOCOL', `AT+CSQ: no +CSQ line in ${JSON.stringify(lines)}`);
    const q = Number(m[1]);
    if (q > 5) throw new OutpostError('IRIDIUM_PROTOCOL', `AT+CSQ: ${q} is outside 0..5`);
    return q;
  }

  /**
   * +SBDWB: binary write to the MO buffer with the 2-byte checksum. Result 0 resolves;
   * 1 (timeout, not followed by OK), 2 (checksum) and 3 (size) throw typed errors.
   */
  writeMo(payload: Uint8Array): Promise<void> {
    if (payload.length < 1 || payload.length > MAX_MO_BYTES) {
      return Promise.reject(new OutpostError('IRIDIUM_MO_SIZE', `MO message is ${payload.length} bytes; 1..${MAX_MO_BYTES} allowed`));
    }
    return this.exclusive(async () => {
      const cmd = `AT+SBDWB=${payload.length}`;
      const first = await this.exchange(cmd, this.timeouts.atMs, (l) => l === 'READY' || /^[0-3]$/.test(l));
      const last = first[first.length - 1]!;
      let status: number;
      if (last === 'READY') {
        await this.transport.writeRaw(withChecksum(payload));
        const after = await this.collect(cmd, this.timeouts.sbdwbMs, (l) => /^[0-3]$/.test(l));
        status = Number(after[after.length - 1]);
      } else status = Number(last); // size refused before READY
      // Every result but 1 is followed by OK (RockBLOCK note on +SBDWB).
      if (status !== SBDWB_STATUS.TIMEOUT) await this.collect(cmd, this.timeouts.atMs, (l) => l === 'OK');
      switch (status) {
        case SBDWB_STATUS.OK:
          return;
        case SBDWB_STATUS.TIMEOUT:
          throw new OutpostError('IRIDIUM_TIMEOUT', '+SBDWB: modem timed out waiting for the message bytes (status 1)');
        case SBDWB_STATUS.BAD_CHECKSUM:
          throw new OutpostError('IRIDIUM_CHECKSUM', '+SBDWB: modem computed a different checksum (status 2)');
        default:
          throw new OutpostError('IRIDIUM_MO_SIZE', `+SBDWB: modem refused the size ${payload.length} (status 3)`);
      }
    });
  }

  /** +SBDIX (or +SBDIXA when answering a ring alert): one SBD session. */
  session(answerRing = false): Promise<SbdixResult> {
    return this.exclusive(async () => {
      const cmd = answerRing ? 'AT+SBDIXA' : 'AT+SBDIX';
      const lines = await this.exchange(cmd, this.timeouts.sessionMs);
      const line = lines.find((l) => l.includes('+SBDIX:'));
      if (!line) throw new OutpostError('IRIDIUM_PROTOCOL', `${cmd}: no +SBDIX line in ${JSON.stringify(lines)}`);
      return parseSbdix(line);
    });
  }

  /** +SBDRB: the MT buffer as raw bytes, checksum verified. An empty buffer gives length 0. */
  readMt(): Promise<Buffer> {
    return this.exclusive(async () => {
      const t = this.transport;
      t.discardPending();
      const frame = t.readFrame(this.timeouts.atMs);
      try {
        await t.writeText('AT+SBDRB\r');
      } catch (err) {
        frame.catch(() => undefined);
        throw err;
      }
      const f = await frame;
      await this.collect('AT+SBDRB', this.timeouts.sbdrbOkMs, (l) => l === 'OK').catch((err: unknown) => {
        if (!(err instanceof OutpostError && err.code === 'IRIDIUM_TIMEOUT')) throw err;
      });
      if (!f.checksumOk) {
        throw new OutpostError('IRIDIUM_CHECKSUM', `+SBDRB checksum ${f.received} does not match ${f.computed}`);
      }
      return f.payload;
    });
  }

  /** +SBDD: 0 clears the MO buffer, 1 the MT buffer, 2 both. The modem answers 0 (ok) or 1 (error). */
  async clearBuffers(which: 0 | 1 | 2): Promise<void> {
    const lines = await this.command(`AT+SBDD${which}`);
    if (lines.includes('1') || !lines.includes('0')) {
      throw new OutpostError('IRIDIUM_PROTOCOL', `AT+SBDD${which} failed: ${JSON.stringify(lines)}`);
    }
  }
}

function parseSbdix(line: string): SbdixResult {
  const m = /\+SBDIX:\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)/.exec(line);
  if (!m) throw new OutpostError('IRIDIUM_PROTOCOL', `malformed +SBDIX response: ${JSON.stringify(line)}`);
  const [moStatus, momsn, mtStatus, mtmsn, mtLength, mtQueued] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  if (mtStatus > 2 || mtLength > MAX_MT_BYTES) throw new OutpostError('IRIDIUM_PROTOCOL', `implausible +SBDIX response: ${line}`);
  return { moStatus, momsn, mtStatus, mtmsn, mtLength, mtQueued };
}
