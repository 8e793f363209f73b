// The per-point state a DevicePoller works on and the pure steps that make it: which points a
// device polls at which interval, its slots, and a cycle's reads with their decode order.
// Apart from device.ts, which keeps the poll loop, quality and failure handling, because none
// of this touches the bus or the clock.
import type { Value } from '../../core/datapoint.js';
import { OutpostError } from '../../core/errors.js';
import type { DeviceOptions } from './device-options.js';
import { compilePoint, datapointId, type CompiledPoint } from './mapping.js';
import { planReads, type PlanOptions } from './planner.js';
import type { PointDef, RegisterFunction } from './templates.js';
import type { ModbusRequest } from './transport.js';

export type Quality = 'good' | 'bad' | 'stale';
export type Reading = { id: string; v: Value; t: number; q?: 'bad' | 'stale' };

/** One point of the device with its schedule and state, worked out once in `usePoints`. */
export interface Slot {
  readonly index: number;
  readonly def: PointDef;
  readonly point: CompiledPoint;
  /** Datapoint id (prefix + name). */
  readonly id: string;
  readonly interval: number;
  /** Points due within a tenth of their interval ride along with this cycle's reads. */
  readonly slack: number;
  /** The slot of this point's scale-factor register, if it has one. */
  scaleFactor: Slot | undefined;
  nextDue: number;
  /** Refused by the device (exception on a single read): not read again before this. */
  badUntil: number;
  quality: Quality | undefined;
  /** When it was last written: a read that started before that is older than the read-back. */
  writtenAt: number;
  /** Read on its own after the device refused a merged read that covered it. */
  isolated: boolean;
  /** Scratch flag of the current cycle. */
  due: boolean;
}

/** One read of a cycle with its decode plan: which slot sits at which offset, scale factors first. */
export interface PlannedRead {
  readonly request: ModbusRequest & { kind: 'read' };
  readonly function: RegisterFunction;
  readonly address: number;
  readonly count: number;
  readonly slots: readonly Slot[];
  readonly offsets: readonly number[];
}

/**
 * The points a device polls (`only`, plus the scale-factor registers they need) with their
 * intervals (`intervals`, then the point's, then the device's); CONFIG_INVALID for unknown names.
 */
export function selectPoints(all: PointDef[], options: DeviceOptions): Array<PointDef & { interval: number }> {
  const only = options.only ? new Set(options.only) : undefined;
  let points = only ? all.filter((p) => only.has(p.name)) : all;
  if (only) {
    const missing = [...only].filter((n) => !all.some((p) => p.name === n));
    if (missing.length) throw new OutpostError('CONFIG_INVALID', `${options.name}: "only" names unknown point(s) ${missing.join(', ')}`);
    // Scale-factor registers of the chosen points are needed to decode them.
    const sfs = new Set(points.map((p) => p.scaleFactor).filter((s): s is string => !!s));
    points = all.filter((p) => only.has(p.name) || sfs.has(p.name));
  }
  for (const name of Object.keys(options.intervals ?? {})) {
    if (!points.some((p) => p.name === name)) throw new OutpostError('CONFIG_INVALID', `${options.name}: "intervals" names unknown point ${name}`);
  }
  const defs = points.map((p) => ({ ...p, interval: options.intervals?.[p.name] ?? p.interval ?? options.interval }));
  // Scale factors follow the fastest point that uses them.
  for (const p of defs) {
    if (!p.scaleFactor) continue;
    const sf = defs.find((q) => q.name === p.scaleFactor)!;
    sf.interval = Math.min(sf.interval, p.interval);
  }
  return defs;
}

/** One slot per point, each linked to its scale-factor slot; all due at `now`. */
export function buildSlots(defs: Array<PointDef & { interval: number }>, prefix: string, now: number): Slot[] {
  const slots: Slot[] = defs.map((def, index) => ({
    index,
    def,
    point: compilePoint(def),
    id: datapointId(prefix, def),
    interval: def.interval,
    slack: Math.min(def.interval / 10, 1000),
    scaleFactor: undefined,
    nextDue: now,
    badUntil: 0,
    quality: undefined,
    writtenAt: -Infinity,
    isolated: false,
    due: false,
  }));
  for (const s of slots) if (s.def.scaleFactor) s.scaleFactor = slots.find((q) => q.def.name === s.def.scaleFactor);
  return slots;
}

/** The reads (with decode plans) for the slots flagged due: merged reads, then isolated points one by one. */
export function planSlotReads(deviceSlots: readonly Slot[], slotOf: ReadonlyMap<PointDef, Slot>, options: PlanOptions): PlannedRead[] {
  const due = deviceSlots.filter((s) => s.due);
  const blocks = planReads(
    due.filter((s) => !s.isolated).map((s) => s.def),
    options,
  );
  for (const s of due) if (s.isolated) blocks.push({ function: s.def.function, address: s.def.address, count: s.def.count, points: [s.def] });
  return blocks.map((b) => {
    // Scale-factor registers are decoded before the points that use them.
    const slots = b.points.map((p) => slotOf.get(p)!).sort((x, y) => (y.def.internal ? 1 : 0) - (x.def.internal ? 1 : 0));
    return {
      request: { kind: 'read', function: b.function, address: b.address, count: b.count },
      function: b.function,
      address: b.address,
      count: b.count,
      slots,
      offsets: slots.map((s) => s.def.address - b.address),
    };
  });
}
