import { z } from 'zod';
import { OutpostError } from './errors.js';

/** Datapoint ids: stable, lower-case, `[a-z0-9_.-]` (DESIGN.md, data model). */
export const DATAPOINT_ID = /^[a-z0-9_.-]{1,128}$/;

const Scalar = z.union([z.number(), z.string(), z.boolean()]);

/** A datapoint's own raw retention (see `retention` below). */
const DatapointRetentionSchema = z.strictObject({
  /** Days raw readings are kept; null: for ever. */
  rawDays: z.number().positive().nullable(),
});

export const DatapointSchema = z.strictObject({
  id: z.string().regex(DATAPOINT_ID, 'datapoint id must match [a-z0-9_.-]{1,128}'),
  adapter: z.string().min(1),
  kind: z.enum(['sensor', 'actuator']).default('sensor'),
  type: z.enum(['number', 'boolean', 'string', 'json']).default('number'),
  unit: z.string().max(32).optional(),
  description: z.string().max(1024).optional(),
  min: z.number().optional(),
  max: z.number().optional(),
  allowed: z.array(Scalar).min(1).optional(),
  meta: z.record(z.string(), z.unknown()).optional(),
  /**
   * How long storage keeps this datapoint's raw readings, set by its adapter at registration
   * (e.g. bms-files `retentionRawDays` for imported history): days, or null for ever. A
   * matching `storage.retention.rules` pattern wins over it; without either,
   * `storage.retention.rawDays` applies (storage/retention.ts, `effectiveRawDays`).
   */
  retention: DatapointRetentionSchema.optional(),
});

export type Datapoint = z.infer<typeof DatapointSchema>;
/** What an adapter passes to `ctx.datapoints.register`: the host fills in `adapter`. */
export type DatapointInput = z.input<typeof DatapointSchema> | Omit<z.input<typeof DatapointSchema>, 'adapter'>;

export type Quality = 'good' | 'stale' | 'bad';
export type Value = number | boolean | string | null | object;

/** A value message as it travels on the bus and is stored: `t` is measurement time (epoch ms, UTC). */
export interface ValueMessage {
  v: Value;
  t: number;
  /** Omitted when good. A stale or bad reading carries `v: null` rather than a repeated value. */
  q?: Exclude<Quality, 'good'>;
}

export interface SetpointRequest {
  v: Value;
  /** Optional acceptable range of the requester (BEMCom setpoint message). */
  min?: number;
  max?: number;
  /** Epoch ms after which the request is void. */
  expires?: number;
}

const MAX_STRING = 4096;
const MAX_JSON_BYTES = 64 * 1024;
/** Readings dated more than this far in the future come from a device with a wrong clock. */
export const MAX_FUTURE_MS = 24 * 3600 * 1000;
const MIN_TIME = Date.UTC(2000, 0, 1);

/**
 * Turns a raw payload into a value message. Accepts `{"v":..,"t":..}` (the design's
 * format) and, for simple devices, a bare JSON scalar or plain number text ("230.1").
 * `t` is undefined when the payload has none: the ingest stamps it (datapoints/stamps.ts).
 */
export function parseValuePayload(payload: Buffer | string): { v: unknown; t?: unknown; q?: unknown } {
  const text = typeof payload === 'string' ? payload : payload.toString('utf8');
  if (text.length === 0) throw new OutpostError('VALUE_MALFORMED', 'empty payload');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new OutpostError('VALUE_MALFORMED', 'payload is not JSON: expected {"v":<value>,"t":<epoch ms>} or a bare value');
  }
  if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
    const o = parsed as Record<string, unknown>;
    if (!('v' in o)) throw new OutpostError('VALUE_MALFORMED', 'value message has no "v" field');
    for (const key in o) {
      if (key !== 'v' && key !== 't' && key !== 'q')
        throw new OutpostError(
          'VALUE_MALFORMED',
          `value message has unknown field(s): ${Object.keys(o)
            .filter((k) => k !== 'v' && k !== 't' && k !== 'q')
            .join(', ')}`,
        );
    }
    return { v: o.v, t: o.t, q: o.q };
  }
  return { v: parsed };
}

/** Checks a value message against its datapoint; returns the normalised message. */
export function validateValue(dp: Pick<Datapoint, 'id' | 'type'>, raw: { v: unknown; t: unknown; q?: unknown }, now: number): ValueMessage {
  const t = raw.t;
  if (typeof t !== 'number' || !Number.isInteger(t)) {
    throw new OutpostError('VALUE_TIME', `${dp.id}: "t" must be an integer epoch in milliseconds`);
  }
  if (t < MIN_TIME || t > now + MAX_FUTURE_MS) {
    throw new OutpostError(
      'VALUE_TIME',
      `${dp.id}: "t" ${t} is outside 2000-01-01 .. now+24h (is it seconds instead of milliseconds, or is the device clock wrong?)`,
    );
  }
  let q: ValueMessage['q'];
  if (raw.q !== undefined && raw.q !== 'good') {
    if (raw.q !== 'stale' && raw.q !== 'bad') throw new OutpostError('VALUE_MALFORMED', `${dp.id}: "q" must be good, stale or bad`);
    q = raw.q;
  }
  const v = raw.v;
  if (v === null) {
    if (!q) throw new OutpostError('VALUE_TYPE', `${dp.id}: null is only allowed with q "stale" or "bad"`);
    return { v: null, t, q };
  }
  return q ? { v: coerceValue(dp, v), t, q } : { v: coerceValue(dp, v), t };
}

/**
 * A point of `dp` as stored: `p` itself when it already is a valid, normalised reading (a
 * number of a number datapoint, a gap with its quality flag: what adapters publish in bulk,
 * so a 650,000-point file import copies nothing per reading), else its normalised copy.
 * Throws what validateValue throws.
 */
export function validatePoint(
  dp: Pick<Datapoint, 'id' | 'type'>,
  p: { id: string; v: unknown; t: unknown; q?: unknown },
  now: number,
): { id: string } & ValueMessage {
  const { t, v, q } = p;
  if (typeof t === 'number' && Number.isInteger(t) && t >= MIN_TIME && t <= now + MAX_FUTURE_MS) {
    if (q === undefined ? dp.type === 'number' && typeof v === 'number' && Number.isFinite(v) : v === null && (q === 'bad' || q === 'stale'))
      return p as { id: string } & ValueMessage;
  }
  return { id: p.id, ...validateValue(dp, p, now) };
}

export function coerceValue(dp: Pick<Datapoint, 'id' | 'type'>, v: unknown): Value {
  switch (dp.type) {
    case 'number':
      if (typeof v === 'number' && Number.isFinite(v)) return v;
      throw new OutpostError('VALUE_TYPE', `${dp.id}: expected a finite number, got ${describe(v)}`);
    case 'boolean':
      if (typeof v === 'boolean') return v;
      if (v === 0 || v === 1) return v === 1;
      throw new OutpostError('VALUE_TYPE', `${dp.id}: expected true/false (or 0/1), got ${describe(v)}`);
    case 'string':
      if (typeof v === 'string' && v.length <= MAX_STRING) return v;
      throw new OutpostError('VALUE_TYPE', `${dp.id}: expected a string of at most ${MAX_STRING} characters, got ${describe(v)}`);
    case 'json': {
      const size = Buffer.byteLength(JSON.stringify(v) ?? '');
      if (v !== undefined && size <= MAX_JSON_BYTES) return v as Value;
      throw new OutpostError('VALUE_TYPE', `${dp.id}: expected JSON of at most ${MAX_JSON_BYTES} bytes`);
    }
  }
}

/** Validates a setpoint against an actuator's limits. Out of range is refused, never clamped. */
export function validateSetpoint(dp: Datapoint, body: unknown, now: number): SetpointRequest {
  if (dp.kind !== 'actuator') throw new OutpostError('DP_NOT_ACTUATOR', `${dp.id} is a sensor; only actuators accept setpoints`);
  if (body === null || typeof body !== 'object' || Array.isArray(body) || !('v' in body)) {
    throw new OutpostError('VALUE_MALFORMED', 'setpoint must be an object {"v": <value>, "min"?, "max"?, "expires"?}');
  }
  const b = body as Record<string, unknown>;
  const extra = Object.keys(b).filter((k) => !['v', 'min', 'max', 'expires'].includes(k));
  if (extra.length) throw new OutpostError('VALUE_MALFORMED', `setpoint has unknown field(s): ${extra.join(', ')}`);
  for (const k of ['min', 'max', 'expires'] as const) {
    if (b[k] !== undefined && (typeof b[k] !== 'number' || !Number.isFinite(b[k]))) {
      throw new OutpostError('VALUE_MALFORMED', `setpoint "${k}" must be a number`);
    }
  }
  const v = coerceValue(dp, b.v);
  const req: SetpointRequest = { v };
  if (b.min !== undefined) req.min = b.min as number;
  if (b.max !== undefined) req.max = b.max as number;
  if (b.expires !== undefined) req.expires = b.expires as number;
  if (req.expires !== undefined && req.expires <= now) {
    throw new OutpostError('SETPOINT_EXPIRED', `setpoint expired at ${new Date(req.expires).toISOString()}`);
  }
  if (typeof v === 'number') {
    const lo = Math.max(dp.min ?? -Infinity, req.min ?? -Infinity);
    const hi = Math.min(dp.max ?? Infinity, req.max ?? Infinity);
    if (v < lo || v > hi) {
      throw new OutpostError('SETPOINT_OUT_OF_RANGE', `${dp.id}: ${v} is outside the allowed range ${fmtRange(lo, hi)}${dp.unit ? ' ' + dp.unit : ''}`, {
        details: { min: Number.isFinite(lo) ? lo : undefined, max: Number.isFinite(hi) ? hi : undefined },
      });
    }
  }
  if (dp.allowed && !dp.allowed.some((a) => a === v)) {
    throw new OutpostError('SETPOINT_OUT_OF_RANGE', `${dp.id}: ${JSON.stringify(v)} is not one of ${JSON.stringify(dp.allowed)}`, {
      details: { allowed: dp.allowed },
    });
  }
  return req;
}

function fmtRange(lo: number, hi: number): string {
  return `[${Number.isFinite(lo) ? lo : '-∞'}, ${Number.isFinite(hi) ? hi : '∞'}]`;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s.length > 40 ? s.slice(0, 40) + '…' : s;
}
