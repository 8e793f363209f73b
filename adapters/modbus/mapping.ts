import type { DatapointInput } from '../../runtime/datapoints/model.js';
import { OutpostError } from '../../runtime/errors.js';
import { decodeRaw, encodeRaw, isSentinel, normaliseSentinels, type RawValue } from './codec.js';
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
    meta: { ...meta, register: { function: point.function, address: point.address, type: point.type, wordOrder: point.wordOrder }, ...(point.counter ? { counter: true } : {}) },
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

/** float32 carries ~7 significant digits; printing more only shows conversion noise (230.1 → 230.10000610…). */
function tidy(value: number, point: PointDef): number {
  if (point.type === 'float32') return Number(value.toPrecision(7));
  if (point.scale !== 1 || point.offset !== 0 || point.scaleFactor) return Number(value.toPrecision(12));
  return value;
}

export function rawOf(point: PointDef, data: BlockData): RawValue | boolean {
  const i = point.address - data.address;
  if (point.function === 'coil' || point.function === 'discrete') {
    const bit = data.bits?.[i];
    if (bit === undefined) throw new OutpostError('MODBUS_FRAME', `${point.name}: bit ${point.address} missing from the response`);
    return bit;
  }
  const words = data.words?.slice(i, i + point.count);
  if (!words || words.length !== point.count) throw new OutpostError('MODBUS_FRAME', `${point.name}: registers ${point.address}+${point.count} missing from the response`);
  return decodeRaw(words, point.type, point.wordOrder);
}

/**
 * Engineering value of one point: raw × scale × 10^sf + offset. A sentinel ("not
 * available"), NaN/∞ from a float register, or a missing scale factor gives `q: bad`
 * with no value, never a made-up number.
 */
export function decodePoint(point: PointDef, data: BlockData, scaleFactors?: ReadonlyMap<string, number | null>): PointValue {
  const raw = rawOf(point, data);
  if (typeof raw === 'boolean') return { v: raw };
  if (point.type === 'bool') {
    const n = raw as number;
    return { v: point.bit === undefined ? n !== 0 : ((n >> point.bit) & 1) === 1 };
  }
  if (typeof raw === 'string') return { v: raw };
  if (isSentinel(raw, normaliseSentinels(point.type, point.nan))) return { v: null, q: 'bad' };
  let value = typeof raw === 'bigint' ? Number(raw) : raw;
  if (!Number.isFinite(value)) return { v: null, q: 'bad' };
  let factor = point.scale;
  if (point.scaleFactor) {
    const sf = scaleFactors?.get(point.scaleFactor);
    // SunSpec limits sunssf to -10..10 (§6.2); anything else is a broken read.
    if (sf === undefined || sf === null || sf < -10 || sf > 10) return { v: null, q: 'bad' };
    factor *= 10 ** sf;
  }
  value = value * factor + point.offset;
  return { v: tidy(value, point) };
}

/** Decodes every point of a block, scale-factor registers first so dependents can use them. */
export function decodeBlock(points: readonly PointDef[], data: BlockData, scaleFactors: Map<string, number | null>): Map<PointDef, PointValue> {
  const out = new Map<PointDef, PointValue>();
  for (const p of points) {
    if (!p.internal) continue;
    const value = decodePoint(p, data);
    scaleFactors.set(p.name, typeof value.v === 'number' ? value.v : null);
    out.set(p, value);
  }
  for (const p of points) if (!p.internal) out.set(p, decodePoint(p, data, scaleFactors));
  return out;
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
      throw new OutpostError('SETPOINT_OUT_OF_RANGE', `${point.name}: ${v} is not a multiple of the register resolution ${point.scale}${point.unit ? ' ' + point.unit : ''}`);
    }
    raw = rounded;
  }
  return { words: encodeRaw(raw, point.type, point.wordOrder) };
}
