import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { SerialPort } from 'serialport';
import { crc16, encodeRaw } from './codec.js';
import { loadSunSpec, SUNSPEC_END, SUNSPEC_MARKER, type SunSpecDefinitions } from './sunspec.js';
import { loadTemplates, type DeviceTemplate, type PointDef } from './templates.js';
import { atOrAfter } from './timing.js';
import { bitsPerChar, interFrameGapMs } from './transport-rtu.js';

/**
 * Modbus device simulator for the demo, the tests and the bench: serves device
 * templates (and a SunSpec inverter + meter) with plausible, changing values over
 * Modbus TCP and over RTU on a pseudo-terminal, with injectable faults.
 */

/** How a simulated device misbehaves. */
export type Fault =
  | { kind: 'none' }
  /** Never answers (dead meter, wrong unit id, broken wire). */
  | { kind: 'timeout' }
  /** Answers every request with this exception code (e.g. 2 illegal data address). */
  | { kind: 'exception'; code: number }
  /** Answers with a corrupted CRC (RTU) — noise on the line. */
  | { kind: 'crc' }
  /** Acknowledges writes but keeps the old value (a setting locked on the device). */
  | { kind: 'ignore-writes' };

export interface SimDeviceSpec {
  unit: number;
  /** Template model id, `sunspec` (inverter model 103 + meter model 203), or an inline template. */
  template: string | DeviceTemplate;
  /** Unmapped registers answer exception 2, like most real meters (default false: they read 0). */
  strict?: boolean;
  fault?: Fault;
}

type Table = 'coil' | 'discrete' | 'holding' | 'input';

const FC_TABLE: Record<number, Table> = { 1: 'coil', 2: 'discrete', 3: 'holding', 4: 'input' };

/** Plausible value of a meter point from its name and unit, around a three-phase site of a few kW. */
function plausible(p: PointDef, t: number, phase: number): number | boolean {
  if (p.type === 'bool') return Math.sin(t / 60_000 + phase) > 0;
  const wave = Math.sin(t / 20_000 + phase);
  const noise = (Math.random() - 0.5) * 0.02;
  const n = p.name;
  switch (p.unit) {
    case 'V':
      return /l1_l2|l2_l3|l3_l1|_ll|ll_/.test(n) ? 400 + 3 * wave + noise : 230 + 2 * wave + noise;
    case 'A':
      return /neutral/.test(n) ? 0.4 + 0.1 * wave : 8 + 3 * wave + noise;
    case 'W':
      return (/_l[123]$/.test(n) ? 1800 : 5400) * (1 + 0.3 * wave) + 20 * noise;
    case 'VA':
      return (/_l[123]$/.test(n) ? 1900 : 5700) * (1 + 0.3 * wave);
    case 'var':
      return (/_l[123]$/.test(n) ? 300 : 900) * wave;
    case 'Hz':
      return 50 + 0.03 * wave;
    case '°C':
      return 35 + 5 * wave;
    case '%':
      return 95 + 3 * wave;
    default:
      if (/power_factor/.test(n)) return 0.95 + 0.03 * wave;
      return 0;
  }
}

/** One simulated slave: a register image per table, refreshed from its points. */
class SimDevice {
  readonly tables: Record<Table, Map<number, number>> = { coil: new Map(), discrete: new Map(), holding: new Map(), input: new Map() };
  /** Holding/coil addresses that accept writes, and whether FC6 is refused (Eastron only takes FC16). */
  private readonly writable = new Map<number, { multipleOnly: boolean }>();
  private readonly counters = new Map<PointDef, number>();
  private readonly phase = Math.random() * 6;
  fault: Fault;
  readonly strict: boolean;
  readonly points: PointDef[];
  /** Requests answered (including exceptions), for tests. */
  served = 0;

  constructor(
    readonly unit: number,
    readonly model: string,
    points: PointDef[],
    options: { strict?: boolean; fault?: Fault },
  ) {
    this.points = points;
    this.strict = options.strict ?? false;
    this.fault = options.fault ?? { kind: 'none' };
    for (const p of points) {
      if (p.kind === 'actuator') this.writable.set(p.address, { multipleOnly: p.write === 'multiple' });
      if (p.counter) this.counters.set(p, 10_000 + Math.random() * 1000);
    }
    // Actuators start at a valid value and then keep what the client writes.
    for (const p of points) if (p.kind === 'actuator') this.setPoint(p, p.allowed?.[0] ?? p.min ?? 0);
    this.tick(Date.now(), 0);
  }

  /** Writes an engineering value into the register image. */
  setPoint(p: PointDef, value: number | boolean | string): void {
    const table = this.tables[p.function];
    if (p.function === 'coil' || p.function === 'discrete') {
      table.set(p.address, value ? 1 : 0);
      return;
    }
    if (typeof value === 'string') {
      const bytes = Buffer.alloc(p.count * 2);
      bytes.write(value.slice(0, p.count * 2), 'latin1');
      for (let i = 0; i < p.count; i++) table.set(p.address + i, bytes.readUInt16BE(i * 2));
      return;
    }
    const scale = p.scale;
    let raw = ((typeof value === 'boolean' ? (value ? 1 : 0) : value) - p.offset) / scale;
    if (p.type !== 'float32' && p.type !== 'float64') raw = Math.round(raw);
    const words = encodeRaw(raw, p.type, p.wordOrder);
    words.forEach((w, i) => {
      table.set(p.address + i, w);
    });
  }

  /** Moves values on: instantaneous ones follow a slow wave, counters integrate power. */
  tick(t: number, dtMs: number): void {
    for (const p of this.points) {
      if (p.kind === 'actuator' || p.internal || p.type === 'string') continue;
      const counter = this.counters.get(p);
      if (counter !== undefined) {
        const kw = 5.4 * (1 + 0.3 * Math.sin(t / 20_000 + this.phase));
        const next = counter + ((kw * dtMs) / 3_600_000) * (p.unit === 'Wh' ? 1000 : 1);
        this.counters.set(p, next);
        this.setPoint(p, p.unit === 'Wh' ? Math.round(next) : next);
        continue;
      }
      this.setPoint(p, plausible(p, t, this.phase));
    }
  }

  /** Engineering view of a point as the device holds it (for tests). */
  words(table: Table, address: number, count: number): number[] {
    return Array.from({ length: count }, (_, i) => this.tables[table].get(address + i) ?? 0);
  }

  /** Handles one request PDU (function code + data); returns the response PDU or null for silence. */
  handle(pdu: Buffer): Buffer | null {
    if (this.fault.kind === 'timeout') return null;
    this.served++;
    const fc = pdu[0]!;
    const exception = (code: number): Buffer => Buffer.from([fc | 0x80, code]);
    if (this.fault.kind === 'exception') return exception(this.fault.code);
    if (pdu.length < 5) return exception(3);
    const address = pdu.readUInt16BE(1);
    const table = FC_TABLE[fc];
    if (table) {
      const count = pdu.readUInt16BE(3);
      const bits = table === 'coil' || table === 'discrete';
      if (count < 1 || count > (bits ? 2000 : 125)) return exception(3);
      if (address + count > 0x10000) return exception(2);
      const map = this.tables[table];
      if (this.strict) for (let a = address; a < address + count; a++) if (!map.has(a)) return exception(2);
      if (bits) {
        const out = Buffer.alloc(2 + Math.ceil(count / 8));
        out[0] = fc;
        out[1] = out.length - 2;
        for (let i = 0; i < count; i++) if (map.get(address + i)) out[2 + (i >> 3)]! |= 1 << (i & 7);
        return out;
      }
      const out = Buffer.alloc(2 + count * 2);
      out[0] = fc;
      out[1] = count * 2;
      for (let i = 0; i < count; i++) out.writeUInt16BE(map.get(address + i) ?? 0, 2 + i * 2);
      return out;
    }
    const ignore = this.fault.kind === 'ignore-writes';
    switch (fc) {
      case 5: {
        const v = pdu.readUInt16BE(3);
        if (v !== 0xff00 && v !== 0) return exception(3);
        if (this.strict && !this.writable.has(address)) return exception(2);
        if (!ignore) this.tables.coil.set(address, v === 0xff00 ? 1 : 0);
        return Buffer.from(pdu.subarray(0, 5));
      }
      case 6: {
        const w = this.writable.get(address);
        if (this.strict && !w) return exception(2);
        if (w?.multipleOnly) return exception(1);
        if (!ignore) this.tables.holding.set(address, pdu.readUInt16BE(3));
        return Buffer.from(pdu.subarray(0, 5));
      }
      case 16: {
        const count = pdu.readUInt16BE(3);
        if (count < 1 || count > 123 || pdu[5] !== count * 2 || pdu.length < 6 + count * 2) return exception(3);
        if (this.strict && !this.writable.has(address)) return exception(2);
        if (!ignore) for (let i = 0; i < count; i++) this.tables.holding.set(address + i, pdu.readUInt16BE(6 + i * 2));
        return Buffer.from(pdu.subarray(0, 5));
      }
      default:
        return exception(1);
    }
  }
}

/**
 * A SunSpec device image: marker at 40000, common model 1, inverter model 103, meter
 * model 203, end marker — laid out exactly as discovery expects to walk it.
 */
function sunspecDevice(unit: number, defs: SunSpecDefinitions, options: { strict?: boolean; fault?: Fault }): SimDevice {
  const base = 40000;
  const layout: Array<{ id: number; length: number }> = [
    { id: 1, length: 66 },
    { id: 103, length: 50 },
    { id: 203, length: 105 },
  ];
  const points: PointDef[] = [];
  const strings: Array<{ p: PointDef; v: string }> = [];
  const fixed: Array<{ address: number; value: number }> = [
    { address: base, value: SUNSPEC_MARKER[0] },
    { address: base + 1, value: SUNSPEC_MARKER[1] },
  ];
  let address = base + 2;
  for (const m of layout) {
    fixed.push({ address, value: m.id }, { address: address + 1, value: m.length });
    const def = defs.models.get(m.id)!;
    for (const p of def.points) {
      const abs = { ...p, address: address + 2 + p.address, name: `${def.name}.${p.name}` };
      if (p.type === 'string') {
        strings.push({
          p: abs,
          v: { manufacturer: 'Outpost', model: 'SimInverter 5000', options: '', version: '1.0.0', serial: `SIM${unit}0001` }[p.name] ?? '',
        });
        continue;
      }
      if (p.internal) {
        // Scale factors: fixed per quantity, as real inverters do (current 0.01 A, voltage 0.1 V, …).
        const sf = /current/.test(p.name) ? -2 : /voltage/.test(p.name) ? -1 : /frequency/.test(p.name) ? -2 : /temperature/.test(p.name) ? -1 : 0;
        fixed.push({ address: abs.address, value: sf & 0xffff });
        continue;
      }
      // Scale factor applied at encode time so the raw register holds value / 10^sf.
      const sf = /current/.test(p.name) ? -2 : /voltage/.test(p.name) ? -1 : /frequency/.test(p.name) ? -2 : /temperature/.test(p.name) ? -1 : 0;
      points.push({ ...abs, scaleFactor: undefined, scale: 10 ** sf, counter: p.counter });
    }
    address += 2 + m.length;
  }
  fixed.push({ address, value: SUNSPEC_END }, { address: address + 1, value: 0 });
  // State and events are set below; the heat-sink sensor is left "not implemented" (0x8000) like many inverters.
  const device = new SimDevice(
    unit,
    'sunspec',
    points.filter((p) => !/^(state|events|temperature_heatsink)$/.test(p.name.split('.')[1]!)),
    options,
  );
  for (const f of fixed) device.tables.holding.set(f.address, f.value);
  for (const s of strings) device.setPoint(s.p, s.v);
  // Fill the rest of each model with "not implemented" so strict reads of the whole model succeed.
  for (let a = base; a < address + 2; a++) if (!device.tables.holding.has(a)) device.tables.holding.set(a, 0x8000);
  const state = points.find((p) => p.name === 'inverter.state');
  if (state) device.tables.holding.set(state.address, 4); // MPPT: producing
  // No events: Evt1 (bitfield32) is 0, not the "not implemented" filler above, which would set bits 15 and 31.
  const events = points.find((p) => p.name === 'inverter.events');
  if (events) for (let i = 0; i < events.count; i++) device.tables.holding.set(events.address + i, 0);
  return device;
}

export interface SimulatorOptions {
  devices: SimDeviceSpec[];
  /** How often values move (ms). */
  tickMs?: number;
  templatesDir?: string;
}

/** Several slaves behind one TCP server and/or one RTU line. */
export class ModbusSimulator {
  readonly devices = new Map<number, SimDevice>();
  private readonly timer: NodeJS.Timeout;
  private tcp: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private rtu: SerialPort | undefined;
  private last = Date.now();

  constructor(options: SimulatorOptions) {
    const templates = loadTemplates(options.templatesDir);
    let sunspec: SunSpecDefinitions | undefined;
    for (const spec of options.devices) {
      let device: SimDevice;
      if (spec.template === 'sunspec') {
        sunspec ??= loadSunSpec();
        device = sunspecDevice(spec.unit, sunspec, spec);
      } else {
        const t = typeof spec.template === 'string' ? templates.get(spec.template) : spec.template;
        if (!t) throw new Error(`simulator: unknown template ${String(spec.template)}`);
        device = new SimDevice(spec.unit, t.model, t.points, spec);
      }
      this.devices.set(spec.unit, device);
    }
    this.timer = setInterval(() => {
      const now = Date.now();
      for (const d of this.devices.values()) d.tick(now, now - this.last);
      this.last = now;
    }, options.tickMs ?? 1000);
    this.timer.unref();
  }

  device(unit: number): SimDevice {
    const d = this.devices.get(unit);
    if (!d) throw new Error(`simulator has no unit ${unit}`);
    return d;
  }

  /**
   * Modbus TCP server (Modbus Messaging on TCP/IP §3.1: MBAP header = transaction id,
   * protocol 0, length, unit id). Requests are answered in arrival order, so clients may
   * pipeline. Binds loopback by default; port 0 picks a free port.
   */
  async listenTcp(options: { host?: string; port?: number; delayMs?: number } = {}): Promise<number> {
    const server = createServer((socket) => {
      this.sockets.add(socket);
      socket.setNoDelay(true);
      let rx = Buffer.alloc(0);
      socket.on('data', (chunk) => {
        rx = rx.length ? Buffer.concat([rx, chunk]) : chunk;
        while (rx.length >= 7) {
          const length = rx.readUInt16BE(4);
          if (length < 2 || length > 254) {
            socket.destroy(); // not Modbus: drop the connection rather than buffer garbage
            return;
          }
          if (rx.length < 6 + length) break;
          const frame = rx.subarray(0, 6 + length);
          rx = rx.subarray(6 + length);
          const unit = frame[6]!;
          const device = this.devices.get(unit);
          const response = device?.handle(frame.subarray(7));
          if (!response) continue;
          const out = Buffer.alloc(7 + response.length);
          frame.copy(out, 0, 0, 4);
          out.writeUInt16BE(response.length + 1, 4);
          out[6] = unit;
          response.copy(out, 7);
          if (options.delayMs) setTimeout(() => socket.writable && socket.write(out), options.delayMs);
          else socket.write(out);
        }
      });
      socket.on('error', () => socket.destroy());
      socket.on('close', () => this.sockets.delete(socket));
    });
    this.tcp = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
    });
    const address = server.address();
    return typeof address === 'object' && address ? address.port : 0;
  }

  /**
   * RTU slave on a serial device (one end of a pty pair). Request frames are delimited
   * by their function code's length; frames with a bad CRC are ignored as a real slave
   * does (§2.5.1). With `emulateWireTime` the answer is held back for the time the
   * request takes on a real line at `baudRate`, the t3.5 silence a slave waits for to
   * know the request has ended (§2.5.1.1), and the response's own wire time, so the pty
   * behaves like RS-485: no master can poll it faster than the frame-time limit.
   */
  async attachRtu(path: string, options: { baudRate?: number; emulateWireTime?: boolean } = {}): Promise<void> {
    const baudRate = options.baudRate ?? 9600;
    const port = new SerialPort({ path, baudRate, autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    this.rtu = port;
    const line = { baudRate, parity: 'none', dataBits: 8, stopBits: 1 } as const;
    const charMs = (bitsPerChar(line) * 1000) / baudRate;
    const gapMs = interFrameGapMs(line);
    let rx = Buffer.alloc(0);
    let receivedAt = 0;
    port.on('error', () => undefined);
    port.on('data', (chunk: Buffer) => {
      receivedAt = performance.now();
      rx = rx.length ? Buffer.concat([rx, chunk]) : Buffer.from(chunk);
      if (rx.length > 512) rx = rx.subarray(rx.length - 512);
      for (;;) {
        if (rx.length < 8) return;
        const fc = rx[1]!;
        const need = fc === 15 || fc === 16 ? 9 + rx[6]! : 8;
        if (rx.length < need) return;
        const frame = rx.subarray(0, need);
        if (crc16(frame.subarray(0, need - 2)) !== frame.readUInt16LE(need - 2)) {
          rx = rx.subarray(1); // not a frame start: slide by one byte and look again
          continue;
        }
        rx = rx.subarray(need);
        const unit = frame[0]!;
        const device = this.devices.get(unit);
        const response = device?.handle(Buffer.from(frame.subarray(1, need - 2)));
        if (!response) continue;
        const out = Buffer.alloc(response.length + 3);
        out[0] = unit;
        response.copy(out, 1);
        out.writeUInt16LE(crc16(out.subarray(0, out.length - 2)), out.length - 2);
        if (device!.fault.kind === 'crc') out[out.length - 1]! ^= 0x5a;
        // Timed from the request's arrival with sub-millisecond precision (a rounded timer
        // would answer early or late by up to 1 ms, a large share of a 115200-baud frame).
        if (options.emulateWireTime) atOrAfter(receivedAt + (need + out.length) * charMs + gapMs, () => port.isOpen && port.write(out));
        else port.write(out);
      }
    });
  }

  async detachRtu(): Promise<void> {
    const port = this.rtu;
    this.rtu = undefined;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.detachRtu();
    for (const s of this.sockets) s.destroy();
    if (this.tcp) await new Promise<void>((resolve) => this.tcp!.close(() => resolve()));
    this.tcp = undefined;
  }
}

/**
 * A pseudo-terminal pair made by socat: what one end writes the other reads, like the
 * two ends of an RS-485 line. `a` is for the simulator, `b` for the adapter.
 */
export class PtyPair {
  private proc: ChildProcess | undefined;

  constructor(
    readonly a: string,
    readonly b: string,
  ) {}

  async open(timeoutMs = 5000): Promise<void> {
    const proc = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${this.a}`, `pty,raw,echo=0,link=${this.b}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    proc.stderr?.resume();
    const failed = new Promise<never>((_, reject) => proc.once('error', reject));
    const end = Date.now() + timeoutMs;
    const ready = (async () => {
      while (!(existsSync(this.a) && existsSync(this.b))) {
        if (Date.now() > end) throw new Error(`socat did not create ${this.a} and ${this.b} within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    await Promise.race([ready, failed]);
  }

  /** Ends socat: both pty nodes vanish, like an unplugged USB adapter. */
  async close(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc || proc.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    });
  }
}
