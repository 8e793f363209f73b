import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { OutpostError, isOutpostError } from '../../core/errors.js';
import './errors.js';
import { parseDeviceData } from '../../runtime/device-data.js';
import { decodeRaw } from './codec.js';
import { DEVICES_DIR, resolvePoints, type PointDef } from './templates.js';

/** "SunS" as two big-endian registers (SunSpec Information Model Specification, §4.1). */
export const SUNSPEC_MARKER = [0x5375, 0x6e53] as const;
/** Model ID that ends the model chain. */
export const SUNSPEC_END = 0xffff;
/** A real device has a handful of models; a longer chain means we are walking garbage. */
const MAX_MODELS = 64;

const fileSchema = z.strictObject({
  model: z.literal('sunspec'),
  description: z.string().min(1),
  source: z.string().min(1),
  bases: z.array(z.number().int().min(0).max(0xffff)).min(1),
  maxRegisters: z.number().int().min(1).max(125).default(125),
  maxGap: z.number().int().min(0).max(124).default(8),
  layouts: z.record(z.string().regex(/^[a-z0-9_]+$/), z.array(z.record(z.string(), z.unknown())).min(1)),
  models: z.array(z.strictObject({ id: z.number().int().min(1).max(0xfffe), layout: z.string(), name: z.string().regex(/^[a-z0-9_]+$/) })).min(1),
});

export interface SunSpecDefinitions {
  bases: number[];
  maxRegisters: number;
  maxGap: number;
  /** Points per model id, addresses relative to the model's data block. */
  models: Map<number, { name: string; layout: string; points: PointDef[] }>;
}

function parseSunSpec(text: string, where = 'sunspec.yaml'): SunSpecDefinitions {
  const f = parseDeviceData(text, where, fileSchema, 'MODBUS_TEMPLATE_INVALID').data;
  const layouts = new Map<string, PointDef[]>();
  for (const [name, points] of Object.entries(f.layouts)) {
    layouts.set(name, resolvePoints(points, { function: 'holding', wordOrder: 'ABCD' }, `${where}.layouts.${name}`));
  }
  const models = new Map<number, { name: string; layout: string; points: PointDef[] }>();
  for (const m of f.models) {
    const points = layouts.get(m.layout);
    if (!points) throw new OutpostError('MODBUS_TEMPLATE_INVALID', `${where}: model ${m.id} uses unknown layout "${m.layout}"`);
    if (models.has(m.id)) throw new OutpostError('MODBUS_TEMPLATE_INVALID', `${where}: model ${m.id} is listed twice`);
    models.set(m.id, { name: m.name, layout: m.layout, points });
  }
  return { bases: f.bases, maxRegisters: f.maxRegisters, maxGap: f.maxGap, models };
}

export function loadSunSpec(dir = DEVICES_DIR): SunSpecDefinitions {
  return parseSunSpec(readFileSync(join(dir, 'sunspec.yaml'), 'utf8'));
}

export interface DiscoveredModel {
  id: number;
  /** Address of the model's ID register. */
  address: number;
  length: number;
}

export interface SunSpecDevice {
  base: number;
  models: DiscoveredModel[];
  identity: Record<string, string>;
  /** Points of the supported models, absolute addresses, names prefixed with the model name. */
  points: PointDef[];
}

/** Reads `count` holding registers at `address`; rejects with an OutpostError. */
export type HoldingReader = (address: number, count: number) => Promise<number[]>;

/**
 * Walks the SunSpec model chain (spec §4: marker, then [ID, L, data...] until ID 0xFFFF).
 * An exception or a missing marker at one base moves on to the next; timeouts and port
 * errors are thrown, since the device is not answering at all.
 */
export async function discoverSunSpec(read: HoldingReader, defs: SunSpecDefinitions): Promise<SunSpecDevice> {
  let base: number | undefined;
  for (const candidate of defs.bases) {
    try {
      const marker = await read(candidate, 2);
      if (marker[0] === SUNSPEC_MARKER[0] && marker[1] === SUNSPEC_MARKER[1]) {
        base = candidate;
        break;
      }
    } catch (err) {
      if (!isOutpostError(err, 'MODBUS_EXCEPTION')) throw err;
    }
  }
  if (base === undefined) {
    throw new OutpostError('MODBUS_TEMPLATE_INVALID', `no SunSpec marker "SunS" at ${defs.bases.join(', ')}; is this a SunSpec device?`);
  }
  const models: DiscoveredModel[] = [];
  let address = base + 2;
  while (models.length < MAX_MODELS && address + 2 <= 0x10000) {
    const [id, length] = (await read(address, 2)) as [number, number];
    if (id === SUNSPEC_END) break;
    models.push({ id, address, length });
    address += 2 + length;
  }
  if (models.length === MAX_MODELS) {
    throw new OutpostError('MODBUS_TEMPLATE_INVALID', `SunSpec model chain at ${base} has more than ${MAX_MODELS} models without an end marker`);
  }
  const identity: Record<string, string> = {};
  const points: PointDef[] = [];
  const seen = new Map<string, number>();
  for (const m of models) {
    const def = defs.models.get(m.id);
    if (!def) continue;
    const dataStart = m.address + 2;
    if (m.id === 1) {
      // Common model: identity strings, read once (Mn, Md, Opt, Vr, SN).
      const words = await read(dataStart, Math.min(m.length, 64));
      for (const p of def.points) {
        if (p.type === 'string' && p.address + p.count <= words.length)
          identity[p.name] = decodeRaw(words.slice(p.address, p.address + p.count), 'string', 'ABCD') as string;
      }
      continue;
    }
    // A second meter (e.g. grid and load meter behind one inverter) gets `meter_2`.
    const n = (seen.get(def.name) ?? 0) + 1;
    seen.set(def.name, n);
    const prefix = n === 1 ? def.name : `${def.name}_${n}`;
    for (const p of def.points) {
      if (p.address + p.count > m.length) continue; // shorter model revision: point not present
      points.push({ ...p, name: `${prefix}.${p.name}`, address: dataStart + p.address, scaleFactor: p.scaleFactor ? `${prefix}.${p.scaleFactor}` : undefined });
    }
  }
  return { base, models, identity, points };
}
