import type { PointDef, RegisterFunction } from './templates.js';

/** One Modbus read request covering several points. */
export interface ReadBlock {
  function: RegisterFunction;
  address: number;
  /** Registers (or bits for coils/discretes). */
  count: number;
  points: PointDef[];
}

export interface PlanOptions {
  /** Most registers per read: min(125, device limit). Modbus Application Protocol §6.3/§6.4: 1..125. */
  maxRegisters: number;
  /** Largest run of unused registers read through to merge two neighbours into one request. */
  maxGap: number;
}

/** FC1/FC2 read at most 2000 bits (Modbus Application Protocol §6.1/§6.2). */
const MAX_BITS = 2000;
const MAX_REGISTERS = 125;

/**
 * Coalesces points into as few reads as the limits allow: per function, sorted by
 * address, greedily extending the current block while the gap to the next point is at
 * most `maxGap` and the block stays within `maxRegisters`. Reading a few unused
 * registers costs 2 bytes each; a separate request costs a full round trip (on RTU at
 * 9600 baud ≈ 8 ms of frame and gap overhead), so small gaps are worth bridging.
 */
export function planReads(points: readonly PointDef[], options: PlanOptions): ReadBlock[] {
  const maxRegisters = Math.max(1, Math.min(MAX_REGISTERS, options.maxRegisters));
  const byFunction = new Map<RegisterFunction, PointDef[]>();
  for (const p of points) {
    const list = byFunction.get(p.function) ?? [];
    list.push(p);
    byFunction.set(p.function, list);
  }
  const blocks: ReadBlock[] = [];
  for (const fn of ['coil', 'discrete', 'holding', 'input'] as const) {
    const list = byFunction.get(fn);
    if (!list) continue;
    const bits = fn === 'coil' || fn === 'discrete';
    // A gap of N registers is worth the same as 16·N bits on the wire.
    const limit = bits ? MAX_BITS : maxRegisters;
    const gap = bits ? options.maxGap * 16 : options.maxGap;
    const sorted = [...list].sort((a, b) => a.address - b.address || b.count - a.count);
    let current: ReadBlock | undefined;
    for (const p of sorted) {
      const end = p.address + p.count;
      if (current) {
        const currentEnd = current.address + current.count;
        const newEnd = Math.max(currentEnd, end);
        if (p.address - currentEnd <= gap && newEnd - current.address <= limit) {
          current.count = newEnd - current.address;
          current.points.push(p);
          continue;
        }
      }
      current = { function: fn, address: p.address, count: p.count, points: [p] };
      blocks.push(current);
    }
  }
  return blocks;
}
