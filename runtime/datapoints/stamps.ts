/**
 * Measurement times of readings that arrive without one. Storage keeps one reading per
 * (datapoint, millisecond), and a re-sent reading with the same `t` replaces the first (imports
 * and retransmissions are idempotent). Readings without `t` are stamped on arrival, and a
 * device sending faster than one per millisecond would overwrite its own readings after
 * they were acknowledged (2,000 QoS 1 `{"v": i}` kept 71-117).
 *
 * The rule: a reading without `t` gets its arrival time; when the datapoint already has a
 * reading at or after that millisecond (a reading of this process, not more than
 * MAX_LEAD_MS ahead), it gets 1 ms after the newest. So every reading of a burst is kept, in
 * arrival order; the stamps run ahead of the clock by at most the burst's excess over one
 * reading per millisecond, and fall back to the clock once the burst ends.
 */
const MAX_LEAD_MS = 60_000;

/** Datapoints tracked before those whose newest reading is older than now are forgotten. */
const PRUNE_ABOVE = 20_000;

export class ReadingTimes {
  /** Newest reading time per datapoint seen by this process (stamped or sent). */
  private readonly newest = new Map<string, number>();

  /** The time for a reading of `id` that came without one. */
  stamp(id: string, now: number): number {
    const last = this.newest.get(id);
    const t = last !== undefined && last >= now && last - now < MAX_LEAD_MS ? last + 1 : now;
    this.record(id, t, now);
    return t;
  }

  /**
   * Notes a reading's time; true when it is the datapoint's newest (at or after both the
   * newest seen here and `stored`, the newest in storage): that one is retained on the bus.
   */
  observe(id: string, t: number, now: number, stored: number | undefined): boolean {
    const last = this.newest.get(id);
    const newest = (last === undefined || t >= last) && (stored === undefined || t >= stored);
    if (newest) this.record(id, t, now);
    return newest;
  }

  /** The datapoint was deleted: its next reading starts afresh. */
  forget(id: string): void {
    this.newest.delete(id);
  }

  private record(id: string, t: number, now: number): void {
    if (this.newest.size >= PRUNE_ABOVE && !this.newest.has(id)) {
      // Only entries at or after now can still push a stamp; the rest are forgotten.
      for (const [key, value] of this.newest) if (value < now) this.newest.delete(key);
    }
    this.newest.set(id, t);
  }
}
