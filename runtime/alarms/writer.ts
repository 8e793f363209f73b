// How alarm states reach storage: each changed alarm's newest state is written as the value of
// its datapoint `alarm.<id>` (registered on first write), one after the other, coalesced (a
// flapping alarm is written once per turn), and retried every second while storage refuses.
import type { DatapointInput } from '../../core/datapoint.js';
import { toOutpostError } from '../../core/errors.js';
import type { Logger } from '../log.js';
import type { AlarmEngineDeps } from './engine.js';
import { alarmDatapoint, alarmValue, type AlarmState } from './state.js';

export class AlarmWriter {
  /** Alarms whose state changed and is not stored yet. */
  private readonly dirty = new Set<string>();
  /** Alarms whose last write failed: written again at `retry()` (the engine's tick). */
  private readonly pendingRetry = new Set<string>();
  /** Alarms whose datapoint another owner holds: evaluated and logged, never published. */
  private readonly unpublishable = new Set<string>();
  private draining: Promise<void> | undefined;
  private failing = false;
  /** Until `release()`: changes are collected, not written (the engine registers its datapoints first, in one write). */
  private held = true;

  constructor(
    private readonly o: {
      datapoints: AlarmEngineDeps['datapoints'];
      publish: AlarmEngineDeps['publish'];
      log: Logger;
      /** The current state of an alarm (the engine's). */
      state(id: string): AlarmState | undefined;
      /** The definition of an alarm's datapoint. */
      definition(a: AlarmState): DatapointInput & { adapter: string };
    },
  ) {}

  /** An alarm changed: stored soon (await `flush()` to know it is). */
  changed(id: string): void {
    this.dirty.add(id);
    if (!this.held) void this.drain();
  }

  /** Starts writing, what was collected first. */
  release(): void {
    this.held = false;
    void this.drain();
  }

  /** Whether the alarm's last change is stored (false while storage refuses it). */
  stored(id: string): boolean {
    return !this.pendingRetry.has(id) && !this.dirty.has(id);
  }

  /** Writes again what storage refused. */
  retry(): void {
    if (this.pendingRetry.size === 0) return;
    for (const id of this.pendingRetry) this.dirty.add(id);
    this.pendingRetry.clear();
    void this.drain();
  }

  /** Resolves once every change so far is stored or failed. */
  async flush(): Promise<void> {
    while (this.draining) await this.draining;
  }

  /** Registers an alarm's datapoint; false when another owner holds the id (then the alarm is evaluated and logged, never published). */
  async register(a: AlarmState): Promise<boolean> {
    try {
      await this.o.datapoints.register(this.o.definition(a));
      return true;
    } catch (err) {
      const e = toOutpostError(err);
      if (e.code !== 'DP_CONFLICT') throw e;
      this.unpublishable.add(a.id);
      this.o.log.error({ alarm: a.id, err: e.message }, 'alarm datapoint is owned by someone else: the alarm is evaluated and logged, not published');
      return false;
    }
  }

  private drain(): Promise<void> {
    this.draining ??= (async () => {
      while (this.dirty.size > 0) {
        const ids = [...this.dirty];
        this.dirty.clear();
        for (const id of ids) {
          const a = this.o.state(id);
          if (!a || this.unpublishable.has(id)) continue;
          try {
            if (!this.o.datapoints.get(alarmDatapoint(id)) && !(await this.register(a))) continue;
            await this.o.publish(alarmDatapoint(id), alarmValue(a));
            this.pendingRetry.delete(id);
          } catch (err) {
            this.pendingRetry.add(id);
            if (!this.failing) this.o.log.error({ alarm: id, err: toOutpostError(err).message }, 'alarm state not stored: retried every second');
            this.failing = true;
          }
        }
      }
      if (this.failing && this.pendingRetry.size === 0) {
        this.failing = false;
        this.o.log.warn('alarm states are stored again');
      }
    })().finally(() => (this.draining = undefined));
    return this.draining;
  }
}
