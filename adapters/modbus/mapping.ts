import type { DatapointInput } from '../../core/datapoint.js';
import { OutpostError } from '../../core/errors.js';
import './errors.js';
import { compileDecoder, encodeRaw, isSentinel, normaliseSentinels, type RawDecoder } from './codec.js';
import type { PointDef } from './templates.js';

/**
 * Mapping between template points and Outpost datapoints: ids, metadata, and the
 * engineering value of a point (scale, offset, scale-factor register, sentinels).
 */
export function datapointId(prefix: string, point: Pick<PointDef, 'name'>): string {
  return `${prefix}.${point.name}`;
}

export function datapointFor(prefix: string, point: PointDef, meta: Record<string, unknown>): DatapointInput {
  const type = point.type === 'bool' ? 'boolean' : point.type === 'string' ? 'string' : 'number';
  const def: DatapointInput = {
    id: datapointId(prefix, point),
    kind: point.kind,
    type,
    description: point.description ?? point.name,
    meta: {
      ...meta,
      register: { function: point.function, address: point.address, type: point.type, wordOrder: point.wordOrder },
      ...(point.counter ? { counter: true } : {}),
      // Words for coded registers: the dashboard's formatValue shows them (dom.js).
      ...(point.enum ? { enum: point.enum } : {}),
      ...(point.bits ? { bits: point.bits } : {}),
    },
  };
  if (point.unit) def.unit = point.unit;
  if (point.kind === 'actuator') {
    if (point.min !== undefined) def.min = point.min;
    if (point.max !== undefined) def.max = point.max;
    if (point.allowed) def.allowed = point.allowed;
  }
  return def;
}

/** What a block read returned: registers or bits, starting at `address`. */
export interface BlockData {
  address: number;
  words?: readonly number[];
  bits?: readonly boolean[];
}

export type PointValue = { v: number | boolean | string; q?: undefined } | { v: null; q: 'bad' };

const POW10 = Array.from({ length: 23 }, (_, i) => 10 ** i); // exact doubles up to 10^22

/**
 * `Number(value.toPrecision(digits))` without building a string on the hot path: the
 * value is scaled to a `digits`-digit integer and rounded half away from zero, as
 * toPrecision does (ECMA-262 Number.prototype.toPrecision: "pick the larger n").
 * n / 10^k is one correctly rounded division, the same double the decimal string
 * parses to. Where the scaled value is too close to a tie for the product's rounding
 * error to be ruled out, or outside 10^0..10^22, toPrecision decides. A test compares
 * both on random float32 images and scaled integers.
 */
export function roundToPrecision(value: number, digits: number): number {
  if (value === 0 || !Number.isFinite(value)) return Number(value.toPrecision(digits));
  const a = value < 0 ? -value : value;
  let k = digits - 1 - Math.floor(Math.log10(a));
  if (k < 0 || k > 22) return Number(value.toPrecision(digits));
  let x = a * POW10[k]!;
  // log10 can be one off next to a power of ten: bring x into [10^(digits-1), 10^digits).
  if (x >= POW10[digits]!) x = a * POW10[--k]!;
  else if (x < POW10[digits - 1]!) x = a * POW10[++k]!;
  if (k < 0 || k > 22) return Number(value.toPrecision(digits));
  const n = Math.floor(x);
  const f = x - n;
  if (f > 0.499 && f < 0.501) return Number(value.toPrecision(digits));
  const r = (f > 0.5 ? n + 1 : n) / POW10[k]!;
  return value < 0 ? -r : r;
}

/**
 * Significant digits a value is published with: float32 carries ~7 (printing more only
 * shows conversion noise, 230.1 → 230.10000610…); scaled integers are cut at 12 to drop
 * binary noise from the scale (2301 × 0.1 = 230.10000000000002); 0 keeps the value.
 */
function publishedDigits(point: PointDef): number {
  if (point.type === 'float32') return 7;
  if (point.scale !== 1 || point.offset !== 0 || point.scaleFactor) return 12;
  return 0;
}

/** A reading the device sent that is not a value: sentinel, NaN/∞, missing or absurd scale factor. */
export const BAD: unique symbol = Symbol('bad reading');
export type Reading = number | boolean | string | typeof BAD;

/**
 * One point with everything the poll loop needs worked out once: its datapoint id, a
 * decoder for its type and word order, its sentinels in both signed and unsigned form,
 * and its rounding. `read` is `decodePoint` without the per-value allocations.
 */
export class CompiledPoint {
  readonly bits: boolean;
  private readonly decode: RawDecoder;
  private readonly sentinels: number[] | undefined;
  private readonly digits: number;

  constructor(readonly def: PointDef) {
    this.bits = def.function === 'coil' || def.function === 'discrete';
    this.decode = compileDecoder(def.type, def.wordOrder, def.count);
    const s = normaliseSentinels(def.type, def.nan);
    this.sentinels = s?.length ? s : undefined;
    this.digits = publishedDigits(def);
  }

  /** Engineering value of the point at `offset` (its address − the block's) in a response. */
  read(words: ArrayLike<number> | undefined, bits: ArrayLike<boolean> | undefined, offset: number, scaleFactors?: ReadonlyMap<string, number | null>): Reading {
    const p = this.def;
    if (this.bits) {
      const bit = bits?.[offset];
      if (bit === undefined) throw new OutpostError('MODBUS_FRAME', `${p.name}: bit ${p.address} missing from the response`);
      return bit;
    }
    if (!words || offset < 0 || offset + p.count > words.length)
      throw new OutpostError('MODBUS_FRAME', `${p.name}: registers ${p.address}+${p.count} missing from the response`);
    const raw = this.decode(words, offset);
    if (p.type === 'bool') {
      const n = raw as number;
      return p.bit === undefined ? n !== 0 : ((n >> p.bit) & 1) === 1;
    }
    if (typeof raw === 'string') return raw;
    let value: number;
    if (typeof raw === 'bigint') {
      if (this.sentinels && isSentinel(raw, this.sentinels)) return BAD;
      value = Number(raw);
    } else {
      if (this.sentinels?.includes(raw)) return BAD;
      value = raw;
    }
    if (!Number.isFinite(value)) return BAD;
    let factor = p.scale;
    if (p.scaleFactor) {
      const sf = scaleFactors?.get(p.scaleFactor);
      // SunSpec limits sunssf to -10..10 (§6.2); anything else is a broken read.
      if (sf === undefined || sf === null || sf < -10 || sf > 10) return BAD;
      factor *= 10 ** sf;
    }
    value = value * factor + p.offset;
    return this.digits ? roundToPrecision(value, this.digits) : value;
  }
}

const compiled = new WeakMap<PointDef, CompiledPoint>();
export function compilePoint(point: PointDef): CompiledPoint {
  let c = compiled.get(point);
  if (!c) {
    c = new CompiledPoint(point);
    compiled.set(point, c);
  }
  return c;
}

/**
 * Engineering value of one point: raw × scale × 10^sf + offset. A sentinel ("not
 * available"), NaN/∞ from a float register, or a missing scale factor gives `q: bad`
 * with no value, never a made-up number.
 */
export function decodePoint(point: PointDef, data: BlockData, scaleFactors?: ReadonlyMap<string, number | null>): PointValue {
  const v = compilePoint(point).read(data.words, data.bits, point.address - data.address, scaleFactors);
  return v === BAD ? { v: null, q: 'bad' } : { v };
}

/** Register image (or coil state) for a setpoint; refuses values the register cannot represent exactly. */
export function encodePoint(point: PointDef, v: unknown): { words?: number[]; bit?: boolean } {
  if (point.function === 'coil') {
    if (typeof v !== 'boolean') throw new OutpostError('VALUE_TYPE', `${point.name}: a coil takes true/false`);
    return { bit: v };
  }
  if (point.type === 'bool') {
    if (typeof v !== 'boolean') throw new OutpostError('VALUE_TYPE', `${point.name}: expected true/false`);
    return { words: [v ? 1 : 0] };
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new OutpostError('VALUE_TYPE', `${point.name}: expected a finite number`);
  let raw = (v - point.offset) / point.scale;
  if (point.type !== 'float32' && point.type !== 'float64') {
    const rounded = Math.round(raw);
    if (Math.abs(raw - rounded) > 1e-6 * Math.max(1, Math.abs(raw))) {
      throw new OutpostError(
        'SETPOINT_OUT_OF_RANGE',
        `${point.name}: ${v} is not a multiple of the register resolution ${point.scale}${point.unit ? ' ' + point.unit : ''}`,
      );
    }
    raw = rounded;
  }
  return { words: encodeRaw(raw, point.type, point.wordOrder) };
}
