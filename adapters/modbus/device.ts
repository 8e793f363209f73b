import type { AdapterContext } from '../../runtime/adapter.js';
import type { Value } from '../../runtime/datapoints/model.js';
import { OutpostError, isOutpostError, toOutpostError } from '../../runtime/errors.js';
import type { ModbusBus } from './bus.js';
import { datapointFor, datapointId, decodeBlock, decodePoint, encodePoint, type PointValue } from './mapping.js';
import { planReads, type ReadBlock } from './planner.js';
import { discoverSunSpec, type SunSpecDefinitions } from './sunspec.js';
import type { PointDef } from './templates.js';
import type { ModbusRequest, ModbusResponse } from './transport.js';

export interface DeviceOptions {
  /** Adapter-unique device name (status key and lane name). */
  name: string;
  bus: string;
  unit: number;
  /** Datapoint id prefix, e.g. `plant.meter1`. */
  prefix: string;
  model: string;
  interval: number;
  timeoutMs: number;
  maxRegisters: number;
  maxGap: number;
  backoff: { initialMs: number; maxMs: number };
  /** Fixed register map (templates and inline maps); absent for SunSpec discovery. */
  points?: PointDef[];
  sunspec?: SunSpecDefinitions;
  /** Per-point interval overrides by point name. */
  intervals?: Record<string, number>;
  /** Restrict to these point names (after discovery for SunSpec). */
  only?: string[];
}

export type DeviceState = 'starting' | 'ok' | 'failing';

export interface DeviceStatus {
  bus: string;
  unit: number;
  model: string;
  state: DeviceState;
  since: number;
  lastError?: string;
  code?: string;
  failures: number;
  retryInMs?: number;
  lastOkAt?: number;
  cycles: number;
  requests: number;
  errors: number;
  points: number;
  /** Reads in the last full cycle vs one read per point. */
  requestsPerCycle?: number;
  badPoints?: string[];
  identity?: Record<string, string>;
  droppedBatches?: number;
}

/** Exceptions that say "this address/function is not there", a map problem rather than a dead device. */
const MAP_EXCEPTIONS = new Set([1, 2, 3]);
/** A point the device refuses is retried this many intervals later (firmware may add it after an update). */
const BAD_POINT_RETRY_INTERVALS = 20;
/** Reading batches waiting for storage per device (a few seconds of polling). */
const MAX_PENDING_BATCHES = 16;

/**
 * Polls one device: plans coalesced reads of the points that are due, decodes and
 * publishes them, and isolates faults. A timeout, bad frame or lost port marks the
 * device failing: its points go `stale` once (no repeated last values), the rest of its
 * cycle is dropped from the bus queue, and it is retried with exponential backoff.
 * An exception 1/2/3 on a merged read splits it, so one missing register costs only
 * its own point (published `bad`), not its neighbours.
 */
export class DevicePoller {
  private points: PointDef[] = [];
  private published: PointDef[] = [];
  private nextDue = new Map<PointDef, number>();
  private index = new Map<PointDef, number>();
  private readonly isolated = new Set<PointDef>();
  private readonly badUntil = new Map<PointDef, number>();
  private readonly lastQuality = new Map<PointDef, 'good' | 'bad' | 'stale'>();
  private readonly scaleFactors = new Map<string, number | null>();
  /** When each actuator was last written: a read that started before that is older than the read-back. */
  private readonly writtenAt = new Map<PointDef, number>();
  private readonly planCache = new Map<string, ReadBlock[]>();
  private nextAttemptAt = 0;
  private publishing: Promise<void> = Promise.resolve();
  private pendingBatches = 0;
  private stopped = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private ready = false;
  readonly status: DeviceStatus;

  constructor(
    private readonly ctx: AdapterContext,
    private readonly bus: ModbusBus,
    readonly options: DeviceOptions,
    private readonly onStatus: () => void,
  ) {
    this.status = { bus: options.bus, unit: options.unit, model: options.model, state: 'starting', since: ctx.clock.now(), failures: 0, cycles: 0, requests: 0, errors: 0, points: 0 };
  }

  private get lane(): string {
    return `${this.options.bus}/${this.options.name}`;
  }

  async start(): Promise<void> {
    if (this.options.points) await this.usePoints(this.options.points);
    this.loop = this.run().catch((err: unknown) => this.ctx.fail(err));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    this.bus.cancel(this.lane, new OutpostError('MODBUS_PORT_UNAVAILABLE', 'adapter stopping'));
    await this.loop;
    await this.publishing;
  }

  private async usePoints(all: PointDef[]): Promise<void> {
    const only = this.options.only ? new Set(this.options.only) : undefined;
    let points = only ? all.filter((p) => only.has(p.name)) : all;
    if (only) {
      const missing = [...only].filter((n) => !all.some((p) => p.name === n));
      if (missing.length) throw new OutpostError('CONFIG_INVALID', `${this.options.name}: "only" names unknown point(s) ${missing.join(', ')}`);
      // Scale-factor registers of the chosen points are needed to decode them.
      const sfs = new Set(points.map((p) => p.scaleFactor).filter((s): s is string => !!s));
      points = all.filter((p) => only.has(p.name) || sfs.has(p.name));
    }
    for (const name of Object.keys(this.options.intervals ?? {})) {
      if (!points.some((p) => p.name === name)) throw new OutpostError('CONFIG_INVALID', `${this.options.name}: "intervals" names unknown point ${name}`);
    }
    this.points = points.map((p) => ({ ...p, interval: this.options.intervals?.[p.name] ?? p.interval ?? this.options.interval }));
    // Scale factors follow the fastest point that uses them.
    for (const p of this.points) {
      if (!p.scaleFactor) continue;
      const sf = this.points.find((q) => q.name === p.scaleFactor)!;
      sf.interval = Math.min(sf.interval!, p.interval!);
    }
    this.published = this.points.filter((p) => !p.internal);
    const meta = { device: this.options.name, bus: this.options.bus, unit: this.options.unit, model: this.options.model };
    const sensors = this.published.filter((p) => p.kind === 'sensor').map((p) => datapointFor(this.options.prefix, p, meta));
    if (sensors.length) await this.ctx.datapoints.register(sensors);
    for (const p of this.published.filter((q) => q.kind === 'actuator')) {
      await this.ctx.datapoints.register(datapointFor(this.options.prefix, p, meta), { onSet: ({ v }) => this.write(p, v) });
    }
    const now = this.ctx.clock.now();
    this.nextDue = new Map(this.points.map((p) => [p, now]));
    this.index = new Map(this.points.map((p, i) => [p, i]));
    this.status.points = this.published.length;
    const full = planReads(this.points, this.options);
    this.status.requestsPerCycle = full.length;
    this.ready = true;
  }

  private sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const now = this.ctx.clock.now();
      if (now < this.nextAttemptAt) {
        await this.sleep(this.nextAttemptAt - now);
        continue;
      }
      if (!this.ready) {
        await this.discover();
        continue;
      }
      let due = Infinity;
      for (const t of this.nextDue.values()) due = Math.min(due, t);
      if (due > now) {
        await this.sleep(due - now);
        continue;
      }
      await this.cycle(now);
    }
  }

  private async discover(): Promise<void> {
    const defs = this.options.sunspec!;
    try {
      const found = await discoverSunSpec(async (address, count) => (await this.request({ kind: 'read', function: 'holding', address, count })).words!, defs);
      this.status.identity = found.identity;
      this.ctx.log.info({ device: this.options.name, base: found.base, models: found.models.map((m) => m.id), identity: found.identity }, 'SunSpec device discovered');
      if (found.points.length === 0) throw new OutpostError('MODBUS_TEMPLATE_INVALID', `SunSpec device has none of the supported models (found ${found.models.map((m) => m.id).join(', ')})`);
      await this.usePoints(found.points);
    } catch (err) {
      if (this.stopped) return;
      const e = toOutpostError(err, 'MODBUS_FRAME');
      if (e.code === 'CONFIG_INVALID') throw e;
      this.fail(e, this.ctx.clock.now(), e.code === 'MODBUS_TEMPLATE_INVALID' ? this.options.backoff.maxMs : undefined);
    }
  }

  private dueSlack(p: PointDef): number {
    // Points due within a tenth of their interval ride along with this cycle's reads.
    return Math.min(p.interval! / 10, 1000);
  }

  private plan(due: PointDef[]): ReadBlock[] {
    const key = due.map((p) => this.index.get(p)).join(',');
    let blocks = this.planCache.get(key);
    if (!blocks) {
      const grouped = due.filter((p) => !this.isolated.has(p));
      blocks = planReads(grouped, this.options);
      for (const p of due) if (this.isolated.has(p)) blocks.push({ function: p.function, address: p.address, count: p.count, points: [p] });
      if (this.planCache.size > 256) this.planCache.clear();
      this.planCache.set(key, blocks);
    }
    return blocks;
  }

  private request(request: ModbusRequest, urgent = false): Promise<ModbusResponse> {
    this.status.requests++;
    return this.bus.submit(this.lane, this.options.unit, request, this.options.timeoutMs, urgent);
  }

  private async cycle(now: number): Promise<void> {
    const due = this.points.filter((p) => this.nextDue.get(p)! <= now + this.dueSlack(p) && (this.badUntil.get(p) ?? 0) <= now);
    if (due.some((p) => p.scaleFactor)) {
      const have = new Set(due);
      const sfNames = new Set(due.map((p) => p.scaleFactor).filter(Boolean));
      for (const p of this.points) if (sfNames.has(p.name) && !have.has(p)) due.push(p);
    }
    for (const p of due) {
      const next = this.nextDue.get(p)! + p.interval!;
      this.nextDue.set(p, next <= now ? now + p.interval! : next);
    }
    for (const [p, until] of this.badUntil) {
      if (until <= now) continue;
      const next = this.nextDue.get(p)!;
      if (next <= now) this.nextDue.set(p, until);
    }
    if (due.length === 0) return;
    const blocks = this.plan(due);
    let commFailure: OutpostError | undefined;
    const outcomes = await Promise.all(
      blocks.map((b) =>
        this.request({ kind: 'read', function: b.function, address: b.address, count: b.count }).then(
          (res) => ({ block: b, res }),
          (err: unknown) => {
            const e = toOutpostError(err, 'MODBUS_FRAME');
            if (!isMapError(e) && !commFailure) {
              commFailure = e;
              // Drop the rest of this device's cycle: it just failed, its other reads would only hold the bus.
              this.bus.cancel(this.lane, e);
            }
            return { block: b, err: e };
          },
        ),
      ),
    );
    if (this.stopped) return; // cancelled by stop(): not a device failure
    const t = this.ctx.clock.now();
    if (commFailure) {
      this.fail(commFailure, t);
      return;
    }
    const values: Array<{ id: string; v: Value; t: number; q?: 'bad' }> = [];
    for (const o of outcomes) {
      if ('err' in o && o.err) {
        this.status.errors++;
        if (o.block.points.length > 1) {
          for (const p of o.block.points) this.isolated.add(p);
          this.planCache.clear();
          this.ctx.log.info({ device: this.options.name, block: `${o.block.function} ${o.block.address}+${o.block.count}`, reason: o.err.message }, 'device refused a merged read; reading those points one by one');
          // Read them again right away, one by one, so good points lose no cycle.
          for (const p of o.block.points) this.nextDue.set(p, t);
        } else {
          const p = o.block.points[0]!;
          this.badUntil.set(p, t + p.interval! * BAD_POINT_RETRY_INTERVALS);
          this.publishQuality(values, p, 'bad', t);
        }
        continue;
      }
      const res = (o as { res: ModbusResponse }).res;
      const decoded = decodeBlock(o.block.points, { address: o.block.address, words: res.words, bits: res.bits }, this.scaleFactors);
      for (const [p, pv] of decoded) if ((this.writtenAt.get(p) ?? -Infinity) < now) this.collect(values, p, pv, t);
    }
    this.succeed(t);
    if (values.length) this.publish(values);
  }

  /**
   * Stores a batch without holding up the next poll: a slow disk must not stretch the
   * polling interval (values carry their read time). At most MAX_PENDING_BATCHES wait;
   * beyond that a batch is dropped and counted rather than buffered without bound.
   */
  private publish(values: Array<{ id: string; v: Value; t: number; q?: 'bad' | 'stale' }>): void {
    if (this.pendingBatches >= MAX_PENDING_BATCHES) {
      this.status.droppedBatches = (this.status.droppedBatches ?? 0) + 1;
      if (this.status.droppedBatches === 1) this.ctx.log.warn({ device: this.options.name }, 'storage is slower than polling; dropping Modbus reading batches (counted in status)');
      return;
    }
    this.pendingBatches++;
    this.publishing = this.publishing
      .then(() => this.ctx.bus.publishValues(values))
      .then(
        () => undefined,
        (err: unknown) => this.ctx.log.warn({ device: this.options.name, code: toOutpostError(err).code, reason: (err as Error).message }, 'Modbus readings not stored'),
      )
      .finally(() => this.pendingBatches--);
  }

  private collect(values: Array<{ id: string; v: Value; t: number; q?: 'bad' }>, p: PointDef, pv: PointValue, t: number): void {
    if (p.internal) return;
    if (pv.q === 'bad') {
      this.publishQuality(values, p, 'bad', t);
      return;
    }
    this.badUntil.delete(p);
    this.lastQuality.set(p, 'good');
    values.push({ id: datapointId(this.options.prefix, p), v: pv.v, t });
  }

  /** A missing reading is published once as `null` with its quality, never repeated every cycle. */
  private publishQuality(values: Array<{ id: string; v: Value; t: number; q?: 'bad' | 'stale' }>, p: PointDef, q: 'bad' | 'stale', t: number): void {
    if (p.internal || this.lastQuality.get(p) === q) return;
    this.lastQuality.set(p, q);
    values.push({ id: datapointId(this.options.prefix, p), v: null, t, q });
  }

  private succeed(t: number): void {
    this.status.cycles++;
    this.status.lastOkAt = t;
    const bad = this.published.filter((p) => this.lastQuality.get(p) === 'bad').map((p) => p.name);
    const badChanged = (this.status.badPoints ?? []).join() !== bad.join();
    this.status.badPoints = bad.length ? bad : undefined;
    if (this.status.state !== 'ok') {
      this.bus.setProbation(this.lane, false);
      if (this.status.state === 'failing') this.ctx.log.info({ device: this.options.name, after: this.status.failures }, 'Modbus device answers again');
      this.status.state = 'ok';
      this.status.since = t;
      this.status.failures = 0;
      this.status.lastError = undefined;
      this.status.code = undefined;
      this.status.retryInMs = undefined;
      this.onStatus();
    } else if (badChanged) this.onStatus();
  }

  private fail(e: OutpostError, t: number, fixedDelay?: number): void {
    this.status.errors++;
    this.status.failures++;
    const { initialMs, maxMs } = this.options.backoff;
    const delay = fixedDelay ?? Math.min(maxMs, initialMs * 2 ** Math.min(this.status.failures - 1, 20));
    this.nextAttemptAt = t + delay;
    // After the backoff every point is due again, so the first attempt reads the whole device.
    for (const p of this.points) this.nextDue.set(p, this.nextAttemptAt);
    const changed = this.status.state !== 'failing' || this.status.code !== e.code;
    if (this.status.state !== 'failing') {
      this.ctx.log.warn({ device: this.options.name, unit: this.options.unit, code: e.code, reason: e.message }, 'Modbus device not answering; its values are marked stale (retrying with backoff)');
      this.status.since = t;
    }
    this.status.state = 'failing';
    this.bus.setProbation(this.lane, true);
    this.status.lastError = e.message;
    this.status.code = e.code;
    this.status.retryInMs = delay;
    const stale: Array<{ id: string; v: Value; t: number; q?: 'bad' | 'stale' }> = [];
    for (const p of this.published) this.publishQuality(stale, p, 'stale', t);
    if (stale.length) this.publish(stale);
    if (changed) this.onStatus();
  }

  /**
   * Setpoint on an actuator point: write (FC5 coil, FC6 or FC16 registers), read the
   * same registers back and compare the register image, then publish the read-back
   * value. Any failure reaches the requester as SETPOINT_FAILED naming the cause.
   */
  async write(p: PointDef, v: Value): Promise<Value> {
    const id = datapointId(this.options.prefix, p);
    const encoded = encodePoint(p, v);
    const request: ModbusRequest =
      encoded.bit !== undefined
        ? { kind: 'write-coil', address: p.address, value: encoded.bit }
        : encoded.words!.length === 1 && p.write === 'single'
          ? { kind: 'write-register', address: p.address, value: encoded.words![0]! }
          : { kind: 'write-registers', address: p.address, values: encoded.words! };
    let back: ModbusResponse;
    this.writtenAt.set(p, this.ctx.clock.now());
    try {
      await this.request(request, true);
      back = await this.request({ kind: 'read', function: p.function, address: p.address, count: p.count }, true);
    } catch (err) {
      const e = toOutpostError(err, 'MODBUS_FRAME');
      throw new OutpostError('SETPOINT_FAILED', `${id}: ${e.message}`, { cause: e, details: { code: e.code, ...(e.details as object) } });
    }
    const ok = encoded.bit !== undefined ? back.bits?.[0] === encoded.bit : encoded.words!.every((w, i) => back.words?.[i] === w);
    const readBack = decodePoint(p, { address: p.address, words: back.words, bits: back.bits }, this.scaleFactors);
    if (!ok) {
      throw new OutpostError('SETPOINT_FAILED', `${id}: wrote ${JSON.stringify(v)} but the device reads back ${JSON.stringify(readBack.v)}`, {
        details: { written: v, readBack: readBack.v },
      });
    }
    const t = this.ctx.clock.now();
    this.lastQuality.set(p, 'good');
    await this.ctx.bus.publishValue(id, readBack.v, { t });
    return readBack.v;
  }
}

function isMapError(e: OutpostError): boolean {
  const exception = (e.details as { exception?: number } | undefined)?.exception;
  return e.code === 'MODBUS_EXCEPTION' && exception !== undefined && MAP_EXCEPTIONS.has(exception);
}
