// Setpoints on actuator points: write, read back, compare, publish. Apart from device.ts
// because a write is a request/response exchange of its own beside the poll cycle, sharing
// only the device's request lane, scale factors and the point's quality.
import type { AdapterContext } from '../../runtime/adapter.js';
import type { Value } from '../../core/datapoint.js';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import './errors.js';
import { decodePoint, encodePoint } from './mapping.js';
import type { Quality, Slot } from './slots.js';
import type { ModbusRequest, ModbusResponse } from './transport.js';

/** What a write needs from its DevicePoller. */
export interface SetpointDevice {
  ctx: AdapterContext;
  /** The device's request lane (counted in its status); writes go urgent. */
  request(request: ModbusRequest, urgent: boolean): Promise<ModbusResponse>;
  scaleFactors: ReadonlyMap<string, number | null>;
  setQuality(s: Slot, q: Quality): void;
}

/**
 * Setpoint on an actuator point: write (FC5 coil, FC6 or FC16 registers), read the
 * same registers back and compare the register image, then publish the read-back
 * value. Any failure reaches the requester as SETPOINT_FAILED naming the cause.
 */
export async function writeSetpoint(device: SetpointDevice, s: Slot, v: Value): Promise<Value> {
  const p = s.def;
  const id = s.id;
  const encoded = encodePoint(p, v);
  const request: ModbusRequest =
    encoded.bit !== undefined
      ? { kind: 'write-coil', address: p.address, value: encoded.bit }
      : encoded.words!.length === 1 && p.write === 'single'
        ? { kind: 'write-register', address: p.address, value: encoded.words![0]! }
        : { kind: 'write-registers', address: p.address, values: encoded.words! };
  let back: ModbusResponse;
  s.writtenAt = device.ctx.clock.now();
  try {
    await device.request(request, true);
    back = await device.request({ kind: 'read', function: p.function, address: p.address, count: p.count }, true);
  } catch (err) {
    const e = toOutpostError(err, 'MODBUS_FRAME');
    throw new OutpostError('SETPOINT_FAILED', `${id}: ${e.message}`, { cause: e, details: { code: e.code, ...(e.details as object) } });
  }
  const ok = encoded.bit !== undefined ? back.bits?.[0] === encoded.bit : encoded.words!.every((w, i) => back.words?.[i] === w);
  const readBack = decodePoint(p, { address: p.address, words: back.words, bits: back.bits }, device.scaleFactors);
  if (!ok) {
    throw new OutpostError('SETPOINT_FAILED', `${id}: wrote ${JSON.stringify(v)} but the device reads back ${JSON.stringify(readBack.v)}`, {
      details: { written: v, readBack: readBack.v },
    });
  }
  const t = device.ctx.clock.now();
  device.setQuality(s, 'good');
  await device.ctx.bus.publishValue(id, readBack.v, { t });
  return readBack.v;
}
