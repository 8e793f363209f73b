import { performance } from 'node:perf_hooks';
import { OutpostError } from '../../core/errors.js';
import './errors.js';
import { atOrAfter } from './timing.js';
import type { ModbusLink, ModbusRequest, ModbusResponse } from './transport.js';

interface Job {
  queuedAt: number;
  unit: number;
  request: ModbusRequest;
  timeoutMs: number;
  resolve: (r: ModbusResponse) => void;
  reject: (e: OutpostError) => void;
}

/** Requests one device may have waiting: a poll cycle's blocks plus a few writes. */
const MAX_QUEUED_PER_DEVICE = 256;
/** A failing device's probe waits behind healthy traffic at most this long, so it is never starved. */
const PROBATION_MAX_WAIT_MS = 2000;

/**
 * Request scheduler in front of one link (an RS-485 line or a TCP connection).
 * Each device gets its own lane; lanes are served round-robin, so a device whose
 * requests all time out costs the others at most one timeout slot per turn, never a
 * queue of them (the node-red-contrib-modbus failure where one dead meter stalls the
 * bus). At most `link.maxInFlight` transactions run at once (1 on RTU), and on RTU
 * the line is kept silent for t3.5 between frames (Modbus over Serial Line §2.5.1.1).
 * Lanes of failing devices are on probation: their (backed-off) probes go after the
 * healthy lanes' waiting requests, so a healthy device's whole cycle is delayed by at
 * most the one probe already on the wire — one timeout slot.
 */
export class ModbusBus {
  private readonly lanes = new Map<string, Job[]>();
  private readonly probation = new Set<string>();
  private order: string[] = [];
  private next = 0;
  private inFlight = 0;
  private lastEnd = 0;
  /** Cancels the wait for the end of the inter-frame gap, while one is scheduled. */
  private gapWait: (() => void) | undefined;
  private closed = false;
  /** Transactions completed, for the bench and status. */
  transactions = 0;

  constructor(readonly link: ModbusLink) {}

  /** Queues a transaction in `lane` (one per device); `urgent` puts it at the head of its lane (writes). */
  submit(lane: string, unit: number, request: ModbusRequest, timeoutMs: number, urgent = false): Promise<ModbusResponse> {
    if (this.closed) return Promise.reject(new OutpostError('MODBUS_PORT_UNAVAILABLE', `${this.link.name} is closed`));
    let jobs = this.lanes.get(lane);
    if (!jobs) {
      jobs = [];
      this.lanes.set(lane, jobs);
      this.order.push(lane);
    }
    if (jobs.length >= MAX_QUEUED_PER_DEVICE) {
      return Promise.reject(new OutpostError('MODBUS_PORT_UNAVAILABLE', `${lane}: ${jobs.length} requests already waiting on ${this.link.name}`));
    }
    return new Promise<ModbusResponse>((resolve, reject) => {
      const job = { queuedAt: performance.now(), unit, request, timeoutMs, resolve, reject };
      if (urgent) jobs.unshift(job);
      else jobs.push(job);
      this.pump();
    });
  }

  /** Drops what `lane` still has waiting (a device that just failed skips the rest of its cycle). */
  cancel(lane: string, reason: OutpostError): number {
    const jobs = this.lanes.get(lane);
    if (!jobs) return 0;
    const dropped = jobs.splice(0);
    for (const j of dropped) j.reject(reason);
    return dropped.length;
  }

  /** Marks a lane's device as failing (probes yield to healthy traffic) or healthy again. */
  setProbation(lane: string, on: boolean): void {
    if (on) this.probation.add(lane);
    else this.probation.delete(lane);
  }

  queued(lane: string): number {
    return this.lanes.get(lane)?.length ?? 0;
  }

  close(): void {
    this.closed = true;
    this.gapWait?.();
    this.gapWait = undefined;
    for (const lane of this.order) this.cancel(lane, new OutpostError('MODBUS_PORT_UNAVAILABLE', `${this.link.name} is closed`));
  }

  private pickJob(): { lane: string; job: Job } | undefined {
    const n = this.order.length;
    const now = performance.now();
    let deferred = -1;
    for (let i = 0; i < n; i++) {
      const idx = (this.next + i) % n;
      const lane = this.order[idx]!;
      const jobs = this.lanes.get(lane)!;
      if (jobs.length === 0) continue;
      if (this.probation.has(lane) && now - jobs[0]!.queuedAt < PROBATION_MAX_WAIT_MS) {
        if (deferred === -1) deferred = idx;
        continue;
      }
      this.next = (idx + 1) % n;
      return { lane, job: jobs.shift()! };
    }
    if (deferred === -1) return undefined;
    this.next = (deferred + 1) % n;
    return { lane: this.order[deferred]!, job: this.lanes.get(this.order[deferred]!)!.shift()! };
  }

  private pump(): void {
    while (!this.closed && this.inFlight < this.link.maxInFlight) {
      if (this.gapWait) return; // the gap timer will pump
      if (this.link.gapMs > 0 && this.inFlight === 0) {
        // RTU: the next request goes out t3.5 after the end of the last frame, measured from
        // when its last byte reached us (the answer event, or the timeout), not a rounded timer.
        const deadline = this.lastEnd + this.link.gapMs;
        if (performance.now() < deadline) {
          if (!this.hasWaiting()) return;
          this.gapWait = atOrAfter(deadline, () => {
            this.gapWait = undefined;
            this.pump();
          });
          return;
        }
      }
      const picked = this.pickJob();
      if (!picked) return;
      this.start(picked.job);
    }
  }

  private hasWaiting(): boolean {
    for (const jobs of this.lanes.values()) if (jobs.length > 0) return true;
    return false;
  }

  private start(job: Job): void {
    this.inFlight++;
    let synchronous = true;
    this.link.execute(job.unit, job.request, job.timeoutMs, (err, res) => {
      // A link that fails before sending may call back at once; settle after this pump turn.
      if (synchronous) queueMicrotask(() => this.finish(job, err, res));
      else this.finish(job, err, res);
    });
    synchronous = false;
  }

  private finish(job: Job, err: OutpostError | null, res: ModbusResponse | undefined): void {
    this.inFlight--;
    this.transactions++;
    this.lastEnd = performance.now();
    if (err) job.reject(err);
    else job.resolve(res!);
    this.pump();
  }
}
