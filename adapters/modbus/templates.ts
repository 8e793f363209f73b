import { readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { OutpostError } from '../../core/errors.js';
import './errors.js';
import { parseDeviceData, readDeviceData } from '../../runtime/device-data.js';
import { REGISTER_TYPES, WORD_ORDERS, registerCount, type RegisterType, type WordOrder } from './codec.js';
import { formatZodError } from '../../core/zod-error.js';

/**
 * Device templates are data: `devices/*.yaml`, validated here at load time.
 * Addresses are 0-based protocol addresses as sent on the wire (register 30001 /
 * 40001 in vendor "Modicon" numbering is address 0).
 */
export const FUNCTIONS = ['coil', 'discrete', 'holding', 'input'] as const;
export type RegisterFunction = (typeof FUNCTIONS)[number];

const POINT_NAME = /^[a-z0-9_]+(\.[a-z0-9_]+)*$/;

/** Register value or bit number → word; a key that is not a number is named in the error. */
function codedRecord(key: RegExp, message: string) {
  return z.record(z.string(), z.string().min(1).max(60)).superRefine((record, ctx) => {
    for (const k of Object.keys(record)) if (!key.test(k)) ctx.addIssue({ code: 'custom', path: [k], message: `${message}, not "${k}"` });
  });
}

const pointFields = {
  name: z.string().regex(POINT_NAME, 'point names are lower-case [a-z0-9_] segments separated by dots'),
  address: z.number().int().min(0).max(0xffff),
  function: z.enum(FUNCTIONS).optional(),
  type: z.enum(REGISTER_TYPES).optional(),
  /** Registers of a `string` point. */
  length: z.number().int().min(1).max(125).optional(),
  wordOrder: z.enum(WORD_ORDERS).optional(),
  /** value = raw × scale × 10^scaleFactor + offset */
  scale: z
    .number()
    .refine((s) => s !== 0, 'scale must not be 0')
    .optional(),
  offset: z.number().optional(),
  /** Name of an int16 point in the same map holding a power-of-ten exponent (SunSpec `sunssf`). */
  scaleFactor: z.string().regex(POINT_NAME).optional(),
  /** Raw register images meaning "not available" (e.g. 0xFFFF, 0x8000); published as `q: bad`. */
  nan: z.array(z.number().int()).max(8).optional(),
  /** For `bool` on a register: the bit (0 = LSB) that carries the flag. */
  bit: z.number().int().min(0).max(15).optional(),
  unit: z.string().max(32).optional(),
  description: z.string().max(1024).optional(),
  kind: z.enum(['sensor', 'actuator']).optional(),
  min: z.number().optional(),
  max: z.number().optional(),
  allowed: z
    .array(z.union([z.number(), z.boolean()]))
    .min(1)
    .optional(),
  /** Poll interval of this point (ms); defaults to the device interval. */
  interval: z.number().int().min(50).max(86_400_000).optional(),
  /** FC6 (`single`) or FC16 (`multiple`) for one-register holding writes; multi-register writes always use FC16. */
  write: z.enum(['single', 'multiple']).optional(),
  /** Datapoint counters (energy registers) for the dashboard and rollups. */
  counter: z.boolean().optional(),
  /** Read (e.g. a SunSpec scale factor) but not published as a datapoint. */
  internal: z.boolean().optional(),
  /**
   * An enumerated register: value → word (SunSpec `enum16` symbols, e.g. inverter `St`
   * 4 → MPPT). Published as the number; the datapoint's `meta.enum` lets the dashboard show the word.
   */
  enum: codedRecord(/^-?\d+$/, 'enumeration keys are integer register values').optional(),
  /**
   * A bitfield register: bit (0 = least significant) → what it flags when set (SunSpec
   * `bitfield16/32` symbols, e.g. `Evt1` bit 0 → ground fault); in the datapoint's `meta.bits`.
   */
  bits: codedRecord(/^\d+$/, 'bit numbers are 0 or more').optional(),
};

const PointInputSchema = z.strictObject(pointFields);
export type PointInput = z.input<typeof PointInputSchema>;

const defaultsSchema = z.strictObject({
  function: z.enum(FUNCTIONS).optional(),
  type: z.enum(REGISTER_TYPES).optional(),
  wordOrder: z.enum(WORD_ORDERS).optional(),
  nan: z.array(z.number().int()).max(8).optional(),
});

/** A point after defaults are applied and cross-field rules are checked. */
export interface PointDef {
  name: string;
  address: number;
  function: RegisterFunction;
  type: RegisterType;
  /** Registers (or bits, for coils/discretes) this point occupies. */
  count: number;
  wordOrder: WordOrder;
  scale: number;
  offset: number;
  scaleFactor?: string;
  nan?: number[];
  bit?: number;
  unit?: string;
  description?: string;
  kind: 'sensor' | 'actuator';
  min?: number;
  max?: number;
  allowed?: Array<number | boolean>;
  interval?: number;
  write: 'single' | 'multiple';
  counter?: boolean;
  internal?: boolean;
  /** Register value → word (an enumerated register). */
  enum?: Record<string, string>;
  /** Bit → what it flags (a bitfield register). */
  bits?: Record<string, string>;
}

/** Integer register types whose raw value can be an enumeration or a bitfield, with their width in bits. */
const CODED_TYPE_BITS: Partial<Record<RegisterType, number>> = { int16: 16, uint16: 16, int32: 32, uint32: 32 };

const templateSchema = z.strictObject({
  model: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'model ids are lower-case [a-z0-9_-]'),
  manufacturer: z.string().min(1),
  description: z.string().min(1),
  /** Where the register map comes from (datasheet title and version). */
  source: z.string().min(1),
  /** Most registers the device answers in one read (Modbus caps this at 125, §6.3/§6.4). */
  maxRegisters: z.number().int().min(1).max(125).default(125),
  /** Largest run of unused registers that may be read through to merge two reads. */
  maxGap: z.number().int().min(0).max(124).default(8),
  defaults: defaultsSchema.default({}),
  points: z.array(z.record(z.string(), z.unknown())).min(1),
});

export interface DeviceTemplate {
  model: string;
  manufacturer: string;
  description: string;
  source: string;
  maxRegisters: number;
  maxGap: number;
  points: PointDef[];
}

type Defaults = z.output<typeof defaultsSchema>;

function issuesText(error: z.ZodError, prefix: string): string {
  return formatZodError(error, { prefix, root: '' });
}

/** Applies defaults and the rules zod cannot express per field; `where` names the source for errors. */
export function resolvePoints(raw: unknown[], defaults: Defaults, where: string): PointDef[] {
  const out: PointDef[] = [];
  const names = new Set<string>();
  raw.forEach((rawPoint, index) => {
    const at = `${where}.points[${index}]`;
    const own = rawPoint as Record<string, unknown>;
    const merged: Record<string, unknown> = { ...pickDefined(defaults), ...own };
    // A default register type does not apply to coils/discretes, which are bits.
    if ((merged.function === 'coil' || merged.function === 'discrete') && own.type === undefined) delete merged.type;
    const parsed = PointInputSchema.safeParse(merged);
    if (!parsed.success) throw new OutpostError('MODBUS_TEMPLATE_INVALID', issuesText(parsed.error, at));
    const p = parsed.data;
    const fn = p.function;
    if (!fn) throw new OutpostError('MODBUS_TEMPLATE_INVALID', `${at} (${p.name}): "function" is required (coil, discrete, holding or input)`);
    const bitFunction = fn === 'coil' || fn === 'discrete';
    const type: RegisterType = bitFunction ? 'bool' : (p.type ?? 'uint16');
    const bad = (msg: string): never => {
      throw new OutpostError('MODBUS_TEMPLATE_INVALID', `${at} (${p.name}): ${msg}`);
    };
    if (bitFunction && p.type && p.type !== 'bool') bad(`${fn} points are bits; type must be bool, not ${p.type}`);
    if (type === 'string' && !p.length) bad('string points need "length" (registers)');
    if (p.bit !== undefined && type !== 'bool') bad('"bit" only applies to bool points');
    const kind = p.kind ?? 'sensor';
    if (kind === 'actuator' && fn !== 'holding' && fn !== 'coil') bad(`only holding registers and coils can be written, not ${fn}`);
    if (kind === 'actuator' && type === 'string') bad('string points cannot be actuators');
    if (kind === 'actuator' && type === 'bool' && fn === 'holding' && p.bit !== undefined) bad('a single bit of a holding register cannot be written safely');
    if (p.min !== undefined && p.max !== undefined && p.min > p.max) bad('"min" is greater than "max"');
    if (p.enum || p.bits) {
      const width = CODED_TYPE_BITS[type];
      const what = p.enum ? '"enum"' : '"bits"';
      if (p.enum && p.bits) bad('a point is an enumeration ("enum") or a bitfield ("bits"), not both');
      if (width === undefined) bad(`${what} needs an int16, uint16, int32 or uint32 point, not ${type}`);
      if ((p.scale ?? 1) !== 1 || (p.offset ?? 0) !== 0 || p.scaleFactor) bad(`${what} needs the raw register value: no scale, offset or scaleFactor`);
      for (const bit of Object.keys(p.bits ?? {})) if (Number(bit) >= width!) bad(`bit ${bit} does not exist in a ${type} register (bits 0-${width! - 1})`);
    }
    const count = bitFunction ? 1 : registerCount(type, p.length);
    if (p.address + count > 0x10000) bad(`address ${p.address} + ${count} registers runs past 65535`);
    if (names.has(p.name)) bad('duplicate point name');
    names.add(p.name);
    out.push({
      name: p.name,
      address: p.address,
      function: fn,
      type,
      count,
      wordOrder: p.wordOrder ?? 'ABCD',
      scale: p.scale ?? 1,
      offset: p.offset ?? 0,
      scaleFactor: p.scaleFactor,
      nan: p.nan,
      bit: p.bit,
      unit: p.unit,
      description: p.description,
      kind,
      min: p.min,
      max: p.max,
      allowed: p.allowed,
      interval: p.interval,
      write: p.write ?? 'single',
      counter: p.counter,
      internal: p.internal,
      enum: p.enum,
      bits: p.bits,
    });
  });
  for (const p of out) {
    if (!p.scaleFactor) continue;
    const sf = out.find((q) => q.name === p.scaleFactor);
    if (!sf) throw new OutpostError('MODBUS_TEMPLATE_INVALID', `${where}: ${p.name} refers to scale factor point "${p.scaleFactor}" that does not exist`);
    if (sf.type !== 'int16') throw new OutpostError('MODBUS_TEMPLATE_INVALID', `${where}: scale factor point ${sf.name} must be int16`);
    if (p.kind === 'actuator')
      throw new OutpostError('MODBUS_TEMPLATE_INVALID', `${where}: ${p.name} is an actuator with a scale-factor register; write it unscaled instead`);
  }
  return out;
}

function pickDefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function parseTemplate(text: string, where: string): DeviceTemplate {
  const t = parseDeviceData(text, where, templateSchema, 'MODBUS_TEMPLATE_INVALID').data;
  return templateFrom(t, where);
}

function templateFrom(t: z.output<typeof templateSchema>, where: string): DeviceTemplate {
  const points = resolvePoints(t.points, t.defaults, where);
  for (const p of points) {
    if (p.function !== 'coil' && p.function !== 'discrete' && p.count > t.maxRegisters) {
      throw new OutpostError('MODBUS_TEMPLATE_INVALID', `${where}: ${p.name} needs ${p.count} registers, more than maxRegisters ${t.maxRegisters}`);
    }
  }
  return { model: t.model, manufacturer: t.manufacturer, description: t.description, source: t.source, maxRegisters: t.maxRegisters, maxGap: t.maxGap, points };
}

export const DEVICES_DIR = join(dirname(fileURLToPath(import.meta.url)), 'devices');

/** Register-map templates in a directory, by model id. SunSpec model definitions live in their own file (sunspec.ts). */
export function loadTemplates(dir = DEVICES_DIR): Map<string, DeviceTemplate> {
  const out = new Map<string, DeviceTemplate>();
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .sort()) {
    if (file.startsWith('sunspec')) continue;
    const where = basename(file);
    const template = templateFrom(readDeviceData(join(dir, file), where, templateSchema, 'MODBUS_TEMPLATE_INVALID').data, where);
    if (out.has(template.model)) throw new OutpostError('MODBUS_TEMPLATE_INVALID', `${where}: model "${template.model}" is defined twice`);
    out.set(template.model, template);
  }
  return out;
}
