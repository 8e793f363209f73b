import type { ModbusClient } from './client.js';
import { OutpostError } from '../../core/errors.js';
import './errors.js';
import type { RegisterFunction } from './templates.js';

/** One Modbus transaction, independent of RTU or TCP framing. */
export type ModbusRequest =
  | { kind: 'read'; function: RegisterFunction; address: number; count: number }
  | { kind: 'write-coil'; address: number; value: boolean }
  | { kind: 'write-register'; address: number; value: number }
  | { kind: 'write-registers'; address: number; values: number[] };

export interface ModbusResponse {
  words?: number[];
  bits?: boolean[];
}

/** How a link reports one transaction: exactly once, never synchronously from `execute`. */
export type LinkCallback = (err: OutpostError | null, res?: ModbusResponse) => void;

/** A physical link (serial line or TCP connection) that executes one transaction. */
export interface ModbusLink {
  readonly name: string;
  /**
   * Runs one transaction and calls `done` once: with the response, or with
   * MODBUS_TIMEOUT / MODBUS_EXCEPTION / MODBUS_FRAME / MODBUS_PORT_UNAVAILABLE. A
   * callback rather than a promise: this is the poll loop's hot path, and the bus
   * settles the one promise its caller holds.
   */
  execute(unit: number, request: ModbusRequest, timeoutMs: number, done: LinkCallback): void;
  /** Most transactions the peer accepts in flight (1 on RTU: half-duplex master/slave, §2.1 of the serial spec). */
  readonly maxInFlight: number;
  /** Silence to keep between the end of one transaction and the next request (RTU t3.5). */
  readonly gapMs: number;
  close(): Promise<void>;
}

export function describeRequest(r: ModbusRequest): string {
  return r.kind === 'read' ? `read ${r.function} ${r.address}+${r.count}` : `${r.kind} ${r.address}`;
}

type Callback<T> = (err: unknown, data: T) => void;
interface FcClient {
  writeFC1(u: number, a: number, n: number, cb: Callback<{ data: boolean[] }>): void;
  writeFC2(u: number, a: number, n: number, cb: Callback<{ data: boolean[] }>): void;
  writeFC3(u: number, a: number, n: number, cb: Callback<{ data: number[] }>): void;
  writeFC4(u: number, a: number, n: number, cb: Callback<{ data: number[] }>): void;
  writeFC5(u: number, a: number, v: boolean, cb: Callback<unknown>): void;
  writeFC6(u: number, a: number, v: number, cb: Callback<unknown>): void;
  writeFC16(u: number, a: number, v: number[], cb: Callback<unknown>): void;
}

/**
 * Issues one request through modbus-serial's callback API, which takes the unit id
 * per call (the promise API uses a client-wide id, unsafe with several devices).
 * The client-wide timeout is read synchronously when the frame is written, so setting
 * it right before the call makes it per request. `done` gets modbus-serial's raw error;
 * the link maps it (and names the request) only when there is one.
 */
function issue(client: ModbusClient, unit: number, r: ModbusRequest, timeoutMs: number, done: (err: unknown, res?: ModbusResponse) => void): void {
  client.setTimeout(timeoutMs);
  const c = client as unknown as FcClient;
  switch (r.kind) {
    case 'read':
      if (r.function === 'holding') return c.writeFC3(unit, r.address, r.count, (err, data) => (err ? done(err) : done(null, { words: data.data })));
      if (r.function === 'input') return c.writeFC4(unit, r.address, r.count, (err, data) => (err ? done(err) : done(null, { words: data.data })));
      // FC1/FC2 answer whole bytes; the padding bits past `count` are not ours.
      if (r.function === 'coil')
        return c.writeFC1(unit, r.address, r.count, (err, data) => (err ? done(err) : done(null, { bits: data.data.slice(0, r.count) })));
      return c.writeFC2(unit, r.address, r.count, (err, data) => (err ? done(err) : done(null, { bits: data.data.slice(0, r.count) })));
    case 'write-coil':
      return c.writeFC5(unit, r.address, r.value, (err) => done(err, {}));
    case 'write-register':
      return c.writeFC6(unit, r.address, r.value, (err) => done(err, {}));
    case 'write-registers':
      return c.writeFC16(unit, r.address, r.values, (err) => done(err, {}));
  }
}

/** Modbus exception codes (Modbus Application Protocol V1.1b3 §7). */
const EXCEPTION_NAMES: Record<number, string> = {
  1: 'illegal function',
  2: 'illegal data address',
  3: 'illegal data value',
  4: 'server device failure',
  5: 'acknowledge',
  6: 'server device busy',
  10: 'gateway path unavailable',
  11: 'gateway target device failed to respond',
};

/** Maps what modbus-serial rejects with onto the coded catalogue. */
export function toModbusError(err: unknown, what: string): OutpostError {
  if (err instanceof OutpostError) return err;
  const e = (err ?? {}) as { name?: string; message?: string; errno?: string; modbusCode?: number };
  if (typeof e.modbusCode === 'number') {
    // 11 is the gateway saying the device behind it did not answer: treat as a timeout.
    if (e.modbusCode === 11)
      return new OutpostError('MODBUS_TIMEOUT', `${what}: gateway target device failed to respond (exception 11)`, { cause: err, details: { exception: 11 } });
    return new OutpostError('MODBUS_EXCEPTION', `${what}: exception ${e.modbusCode} (${EXCEPTION_NAMES[e.modbusCode] ?? 'unknown'})`, {
      cause: err,
      details: { exception: e.modbusCode },
    });
  }
  if (e.name === 'TransactionTimedOutError' || e.errno === 'ETIMEDOUT')
    return new OutpostError('MODBUS_TIMEOUT', `${what}: no answer within the timeout`, { cause: err });
  const message = e.message ?? String(err);
  if (/CRC error|Data length error|Unexpected data error/.test(message)) return new OutpostError('MODBUS_FRAME', `${what}: ${message}`, { cause: err });
  if (e.name === 'PortNotOpenError' || /Port Not Open|ECONNREFUSED|EPIPE|ECONNRESET|closed/i.test(message)) {
    return new OutpostError('MODBUS_PORT_UNAVAILABLE', `${what}: ${message}`, { cause: err });
  }
  return new OutpostError('MODBUS_FRAME', `${what}: ${message}`, { cause: err });
}

/** One transaction a link has handed to modbus-serial and not yet reported. */
export interface Outstanding {
  readonly done: LinkCallback;
  settled: boolean;
}

/**
 * The transactions a link has outstanding, so a lost port or connection can fail them
 * at once instead of each waiting for its timeout. `settle` reports a transaction at
 * most once, whichever of answer, timeout or port loss comes first. (A plain record and
 * no closure per transaction: this runs for every request of every poll.)
 */
export class InFlight {
  private readonly all = new Set<Outstanding>();

  track(done: LinkCallback): Outstanding {
    const o: Outstanding = { done, settled: false };
    this.all.add(o);
    return o;
  }

  settle(o: Outstanding, err: OutpostError | null, res?: ModbusResponse): void {
    if (o.settled) return;
    o.settled = true;
    this.all.delete(o);
    o.done(err, res);
  }

  /**
   * Sends one request on `client`, tracked so `failAll` can end it. `describe` names the
   * transaction in error messages (called only on failure).
   */
  issue(client: ModbusClient, unit: number, request: ModbusRequest, timeoutMs: number, describe: () => string, done: LinkCallback): void {
    const o = this.track(done);
    try {
      issue(client, unit, request, timeoutMs, (err, res) => this.settle(o, err ? toModbusError(err, describe()) : null, res));
    } catch (err) {
      // modbus-serial throws for arguments it refuses (before anything is sent): report it like any failure.
      const e = toModbusError(err, describe());
      process.nextTick(() => this.settle(o, e));
    }
  }

  failAll(err: OutpostError): void {
    for (const o of [...this.all]) this.settle(o, err);
  }

  get size(): number {
    return this.all.size;
  }
}

/** Reports a failure found before anything was sent, asynchronously as the LinkCallback contract requires. */
export function failSoon(done: LinkCallback, err: OutpostError): void {
  process.nextTick(done, err);
}
