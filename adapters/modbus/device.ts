import type { AdapterContext } from '../../runtime/adapter.js';
import type { Value } from '../../core/datapoint.js';
import { OutpostError, isOutpostError, toOutpostError } from '../../core/errors.js';
import type { ModbusBus } from './bus.js';
import { BAD, compilePoint, datapointFor, datapointId, decodePoint, encodePoint, type CompiledPoint } from './mapping.js';
import { planReads } from './planner.js';
import { discoverSunSpec, type SunSpecDefinitions } from './sunspec.js';
import type { PointDef } from './templates.js';
import type { RegisterFunction } from './templates.js';
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
/** Plans kept per device (distinct sets of due points); real devices have a handful. */
const MAX_CACHED_PLANS = 256;

type Quality = 'good' | 'bad' | 'stale';
type Reading = { id: string; v: Value; t: number; q?: 'bad' | 'stale' };

/** One point of the device with its schedule and state, worked out once in `usePoints`. */
interface Slot {
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
interface PlannedRead {
  readonly request: ModbusRequest & { kind: 'read' };
  readonly function: RegisterFunction;
  readonly address: number;
  readonly count: number;
  readonly slots: readonly Slot[];
  readonly offsets: readonly number[];
}

/**
 * Polls one device: plans coalesced reads of the points that are due, decodes and
 * publishes them, and isolates faults. A timeout, bad frame or lost port marks the
 * device failing: its points go `stale` once (no repeated last values), the rest of its
 * cycle is dropped from the bus queue, and it is retried with exponential backoff.
 * An exception 1/2/3 on a merged read splits it, so one missing register costs only
 * its own point (published `bad`), not its neighbours.
 *
 * The poll cycle is kept lean, since on TCP it competes with the wire itself: reads and
 * their decode plans are cached per set of due points, each point's decoder, id and
 * sentinels are prepared once, the cycle's values go to storage as one batch without
 * holding up the next cycle, and nothing waits on a timer between a due cycle's reads.
 */
export class DevicePoller {
  private slots: Slot[] = [];
  private readonly slotOf = new Map<PointDef, Slot>();
  private hasScaleFactors = false;
  private readonly scaleFactors = new Map<string, number | null>();
  private readonly planCache = new Map<string, PlannedRead[]>();
  /** A published point changed to or from `bad` since the status last listed them. */
  private badPointsChanged = false;
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
    const defs = points.map((p) => ({ ...p, interval: this.options.intervals?.[p.name] ?? p.interval ?? this.options.interval }));
    // Scale factors follow the fastest point that uses them.
    for (const p of defs) {
      if (!p.scaleFactor) continue;
      const sf = defs.find((q) => q.name === p.scaleFactor)!;
      sf.interval = Math.min(sf.interval, p.interval);
    }
    const published = defs.filter((p) => !p.internal);
    const meta = { device: this.options.name, bus: this.options.bus, unit: this.options.unit, model: this.options.model };
    const sensors = published.filter((p) => p.kind === 'sensor').map((p) => datapointFor(this.options.prefix, p, meta));
    if (sensors.length) await this.ctx.datapoints.register(sensors);
    const now = this.ctx.clock.now();
    this.slots = defs.map((def, index) => ({
      index,
      def,
      point: compilePoint(def),
      id: datapointId(this.options.prefix, def),
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
    this.slotOf.clear();
    for (const s of this.slots) this.slotOf.set(s.def, s);
    for (const s of this.slots) if (s.def.scaleFactor) s.scaleFactor = this.slots.find((q) => q.def.name === s.def.scaleFactor);
    this.hasScaleFactors = this.slots.some((s) => s.scaleFactor);
    for (const s of this.slots) {
      if (s.def.internal || s.def.kind !== 'actuator') continue;
      await this.ctx.datapoints.register(datapointFor(this.options.prefix, s.def, meta), { onSet: ({ v }) => this.write(s, v) });
    }
    this.planCache.clear();
    this.status.points = published.length;
    this.status.requestsPerCycle = planReads(defs, this.options).length;
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
      for (const s of this.slots) if (s.nextDue < due) due = s.nextDue;
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

  /** The reads (with decode plans) for the slots flagged due; cached per set of due slots. */
  private plan(dueCount: number): PlannedRead[] {
    let key = '*';
    if (dueCount !== this.slots.length) {
      key = '';
      for (const s of this.slots) if (s.due) key += `${s.index},`;
    }
    let reads = this.planCache.get(key);
    if (reads) return reads;
    const due = this.slots.filter((s) => s.due);
    const blocks = planReads(
      due.filter((s) => !s.isolated).map((s) => s.def),
      this.options,
    );
    for (const s of due) if (s.isolated) blocks.push({ function: s.def.function, address: s.def.address, count: s.def.count, points: [s.def] });
    reads = blocks.map((b) => {
      // Scale-factor registers are decoded before the points that use them.
      const slots = b.points.map((p) => this.slotOf.get(p)!).sort((x, y) => (y.def.internal ? 1 : 0) - (x.def.internal ? 1 : 0));
      return {
        request: { kind: 'read', function: b.function, address: b.address, count: b.count },
        function: b.function,
        address: b.address,
        count: b.count,
        slots,
        offsets: slots.map((s) => s.def.address - b.address),
      };
    });
    if (this.planCache.size >= MAX_CACHED_PLANS) this.planCache.clear();
    this.planCache.set(key, reads);
    return reads;
  }

  private request(request: ModbusRequest, urgent = false): Promise<ModbusResponse> {
    this.status.requests++;
    return this.bus.submit(this.lane, this.options.unit, request, this.options.timeoutMs, urgent);
  }

  private async cycle(now: number): Promise<void> {
    const slots = this.slots;
    let dueCount = 0;
    for (const s of slots) {
      s.due = s.nextDue <= now + s.slack && s.badUntil <= now;
      if (s.due) dueCount++;
    }
    if (this.hasScaleFactors) {
      for (const s of slots) {
        if (s.due && s.scaleFactor && !s.scaleFactor.due) {
          s.scaleFactor.due = true;
          dueCount++;
        }
      }
    }
    for (const s of slots) {
      if (s.due) {
        const next = s.nextDue + s.interval;
        s.nextDue = next <= now ? now + s.interval : next;
      } else if (s.badUntil > now && s.nextDue <= now) s.nextDue = s.badUntil;
    }
    if (dueCount === 0) return;
    const reads = this.plan(dueCount);
    let commFailure: OutpostError | undefined;
    // All of the cycle's reads are queued at once: the bus sends each as soon as the
    // link allows (pipelined on TCP where configured), with no timer between them.
    const outcomes = await Promise.all(
      reads.map((r) =>
        this.request(r.request).then(
          (res): ModbusResponse | OutpostError => res,
          (err: unknown) => {
            const e = toOutpostError(err, 'MODBUS_FRAME');
            if (!isMapError(e) && !commFailure) {
              commFailure = e;
              // Drop the rest of this device's cycle: it just failed, its other reads would only hold the bus.
              this.bus.cancel(this.lane, e);
            }
            return e;
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
    const values: Reading[] = [];
    for (let i = 0; i < reads.length; i++) {
      const read = reads[i]!;
      const outcome = outcomes[i]!;
      if (outcome instanceof OutpostError) {
        this.refused(read, outcome, values, t);
        continue;
      }
      const { words, bits } = outcome;
      for (let j = 0; j < read.slots.length; j++) {
        const s = read.slots[j]!;
        if (s.def.internal) {
          const sf = s.point.read(words, bits, read.offsets[j]!);
          this.scaleFactors.set(s.def.name, typeof sf === 'number' ? sf : null);
          continue;
        }
        const v = s.point.read(words, bits, read.offsets[j]!, this.scaleFactors);
        if (s.writtenAt >= now) continue; // read before the last write: the read-back is newer
        if (v === BAD) {
          this.publishQuality(values, s, 'bad', t);
          continue;
        }
        s.badUntil = 0;
        this.setQuality(s, 'good');
        values.push({ id: s.id, v, t });
      }
    }
    this.succeed(t);
    if (values.length) this.publish(values);
  }

  /** A read answered with exception 1/2/3: split a merged read, or mark the single point bad for a while. */
  private refused(read: PlannedRead, err: OutpostError, values: Reading[], t: number): void {
    this.status.errors++;
    if (read.slots.length > 1) {
      for (const s of read.slots) s.isolated = true;
      this.planCache.clear();
      this.ctx.log.info({ device: this.options.name, block: `${read.function} ${read.address}+${read.count}`, reason: err.message }, 'device refused a merged read; reading those points one by one');
      // Read them again right away, one by one, so good points lose no cycle.
      for (const s of read.slots) s.nextDue = t;
      return;
    }
    const s = read.slots[0]!;
    s.badUntil = t + s.interval * BAD_POINT_RETRY_INTERVALS;
    this.publishQuality(values, s, 'bad', t);
  }

  /**
   * Stores a batch without holding up the next poll: a slow disk must not stretch the
   * polling interval (values carry their read time). At most MAX_PENDING_BATCHES wait;
   * beyond that a batch is dropped and counted rather than buffered without bound.
   */
  private publish(values: Reading[]): void {
    if (this.pendingBatches >= MAX_PENDING_BATCHES) {
      this.status.droppedBatches = (this.status.droppedBatches ?? 0) + 1;
      if (this.status.droppedBatches === 1) this.ctx.log.warn({ device: this.options.name }, 'storage is slower than polling; dropping Modbus reading batches (counted in status)');
      return;
    }
    this.pendingBatches++;
    this.publishing = this.publishing.then(() => this.store(values));
  }

  private async store(values: Reading[]): Promise<void> {
    try {
      await this.ctx.bus.publishValues(values);
    } catch (err) {
      this.ctx.log.warn({ device: this.options.name, code: toOutpostError(err).code, reason: (err as Error).message }, 'Modbus readings not stored');
    } finally {
      this.pendingBatches--;
    }
  }

  private setQuality(s: Slot, q: Quality): void {
    if (s.quality === q) return;
    if (s.quality === 'bad' || q === 'bad') this.badPointsChanged = true;
    s.quality = q;
  }

  /** A missing reading is published once as `null` with its quality, never repeated every cycle. */
  private publishQuality(values: Reading[], s: Slot, q: 'bad' | 'stale', t: number): void {
    if (s.def.internal || s.quality === q) return;
    this.setQuality(s, q);
    values.push({ id: s.id, v: null, t, q });
  }

  private succeed(t: number): void {
    this.status.cycles++;
    this.status.lastOkAt = t;
    let badChanged = false;
    if (this.badPointsChanged) {
      this.badPointsChanged = false;
      const bad = this.slots.filter((s) => !s.def.internal && s.quality === 'bad').map((s) => s.def.name);
      badChanged = (this.status.badPoints ?? []).join() !== bad.join();
      this.status.badPoints = bad.length ? bad : undefined;
    }
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
    for (const s of this.slots) s.nextDue = this.nextAttemptAt;
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
    const stale: Reading[] = [];
    for (const s of this.slots) this.publishQuality(stale, s, 'stale', t);
    if (stale.length) this.publish(stale);
    if (changed) this.onStatus();
  }

  /**
   * Setpoint on an actuator point: write (FC5 coil, FC6 or FC16 registers), read the
   * same registers back and compare the register image, then publish the read-back
   * value. Any failure reaches the requester as SETPOINT_FAILED naming the cause.
   */
  private async write(s: Slot, v: Value): Promise<Value> {
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
    s.writtenAt = this.ctx.clock.now();
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
    this.setQuality(s, 'good');
    await this.ctx.bus.publishValue(id, readBack.v, { t });
    return readBack.v;
  }
}

function isMapError(e: OutpostError): boolean {
  const exception = (e.details as { exception?: number } | undefined)?.exception;
  return e.code === 'MODBUS_EXCEPTION' && exception !== undefined && MAP_EXCEPTIONS.has(exception);
}
