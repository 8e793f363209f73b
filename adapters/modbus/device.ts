import type { AdapterContext } from '../../runtime/adapter.js';
import type { Value } from '../../core/datapoint.js';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import './errors.js';
import type { ModbusBus } from './bus.js';
import { BAD, datapointFor } from './mapping.js';
import { planReads } from './planner.js';
import { discoverSunSpec } from './sunspec.js';
import type { PointDef } from './templates.js';
import type { ModbusRequest, ModbusResponse } from './transport.js';
import type { DeviceOptions, DeviceStatus } from './device-options.js';
import { buildSlots, planSlotReads, selectPoints, type PlannedRead, type Quality, type Reading, type Slot } from './slots.js';
import { writeSetpoint } from './setpoint.js';

/** Exceptions that say "this address/function is not there", a map problem rather than a dead device. */
const MAP_EXCEPTIONS = new Set([1, 2, 3]);
/** A point the device refuses is retried this many intervals later (firmware may add it after an update). */
const BAD_POINT_RETRY_INTERVALS = 20;
/** Reading batches waiting for storage per device (a few seconds of polling). */
const MAX_PENDING_BATCHES = 16;
/** Plans kept per device (distinct sets of due points); real devices have a handful. */
const MAX_CACHED_PLANS = 256;

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
    this.status = {
      bus: options.bus,
      unit: options.unit,
      model: options.model,
      state: 'starting',
      since: ctx.clock.now(),
      failures: 0,
      cycles: 0,
      requests: 0,
      errors: 0,
      points: 0,
    };
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
    const defs = selectPoints(all, this.options);
    const published = defs.filter((p) => !p.internal);
    const meta = { device: this.options.name, bus: this.options.bus, unit: this.options.unit, model: this.options.model };
    const sensors = published.filter((p) => p.kind === 'sensor').map((p) => datapointFor(this.options.prefix, p, meta));
    if (sensors.length) await this.ctx.datapoints.register(sensors);
    const now = this.ctx.clock.now();
    this.slots = buildSlots(defs, this.options.prefix, now);
    this.slotOf.clear();
    for (const s of this.slots) this.slotOf.set(s.def, s);
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
      this.ctx.log.info(
        { device: this.options.name, base: found.base, models: found.models.map((m) => m.id), identity: found.identity },
        'SunSpec device discovered',
      );
      if (found.points.length === 0)
        throw new OutpostError(
          'MODBUS_TEMPLATE_INVALID',
          `SunSpec device has none of the supported models (found ${found.models.map((m) => m.id).join(', ')})`,
        );
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
    reads = planSlotReads(this.slots, this.slotOf, this.options);
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
      this.ctx.log.info(
        { device: this.options.name, block: `${read.function} ${read.address}+${read.count}`, reason: err.message },
        'device refused a merged read; reading those points one by one',
      );
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
      if (this.status.droppedBatches === 1)
        this.ctx.log.warn({ device: this.options.name }, 'storage is slower than polling; dropping Modbus reading batches (counted in status)');
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
      this.ctx.log.warn(
        { device: this.options.name, unit: this.options.unit, code: e.code, reason: e.message },
        'Modbus device not answering; its values are marked stale (retrying with backoff)',
      );
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

  /** Setpoint on an actuator point: written and read back by setpoint.ts over this device's lane. */
  private write(s: Slot, v: Value): Promise<Value> {
    return writeSetpoint(
      {
        ctx: this.ctx,
        request: (request, urgent) => this.request(request, urgent),
        scaleFactors: this.scaleFactors,
        setQuality: (slot, q) => this.setQuality(slot, q),
      },
      s,
      v,
    );
  }
}

function isMapError(e: OutpostError): boolean {
  const exception = (e.details as { exception?: number } | undefined)?.exception;
  return e.code === 'MODBUS_EXCEPTION' && exception !== undefined && MAP_EXCEPTIONS.has(exception);
}
