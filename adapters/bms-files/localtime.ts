/**
 * Local wall-clock time → UTC instant in an IANA zone, for BMS exports that write local
 * time without an offset (Insight reports, most ALC trend exports).
 *
 * DST rule (documented in README.md):
 * - Autumn, ambiguous hour (e.g. 01:30 happens twice in America/Chicago on the first
 *   Sunday of November): a report lists rows in time order, so we take the earliest
 *   instant that is not before the previous row of the same file. The first pass through
 *   01:00–01:59 is daylight time; if the report repeats those times, the repeat is
 *   standard time. Without a previous row the earlier (daylight) instant is used.
 * - Spring, non-existent hour (02:00–02:59 on the second Sunday of March): no clock showed
 *   that time, so the row cannot be a measurement at that local time. The row is skipped
 *   and counted (`dstSkippedRows`), never shifted onto the next hour where it would
 *   overwrite the real 03:xx readings.
 */
export type WallTimeResolution = { kind: 'exact'; t: number } | { kind: 'ambiguous'; earlier: number; later: number } | { kind: 'nonexistent' };

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const CACHE_MAX = 4096;

export class ZoneConverter {
  private readonly fmt: Intl.DateTimeFormat;
  /** Offsets by minute: zone rules change on whole minutes, lookups repeat per row. */
  private readonly offsetCache = new Map<number, number>();
  /**
   * Wall-clock hours (epoch ms / 1 h, as if UTC) far from any rule change: the offset
   * throughout. Each row otherwise cost three offset lookups at new minutes (Intl, ~6 µs
   * each), most of the time zone work of an import.
   */
  private readonly steadyHours = new Map<number, number>();

  /** `steadyHours: false`: resolve every wall time on its own (tests compare the two). */
  constructor(
    readonly timeZone: string,
    private readonly options: { steadyHours?: boolean } = {},
  ) {
    this.fmt = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  }

  /** Offset of local time from UTC at `instant` (ms; positive east of Greenwich). */
  offsetAt(instant: number): number {
    const key = Math.floor(instant / 60_000);
    const cached = this.offsetCache.get(key);
    if (cached !== undefined) return cached;
    const parts: Record<string, number> = {};
    for (const p of this.fmt.formatToParts(new Date(instant))) if (p.type !== 'literal') parts[p.type] = Number(p.value);
    const wall = Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!);
    const offset = wall - Math.floor(instant / 1000) * 1000;
    if (this.offsetCache.size > CACHE_MAX) this.offsetCache.clear();
    this.offsetCache.set(key, offset);
    return offset;
  }

  /** All instants that the given wall time denotes (`month` 1–12). */
  resolve(year: number, month: number, day: number, hour: number, minute: number, second: number, ms = 0): WallTimeResolution {
    const wall = Date.UTC(year, month - 1, day, hour, minute, second, ms);
    if (this.options.steadyHours !== false) {
      const key = Math.floor(wall / HOUR_MS);
      let steady = this.steadyHours.get(key);
      if (steady === undefined) {
        // The same offset a day before the hour and a day after it: no rule changes in
        // between (as below, at most one change in two days), and every instant a wall time
        // of this hour can denote (offsets are under 15 h) lies in between.
        const start = key * HOUR_MS;
        const before = this.offsetAt(start - DAY_MS);
        steady = before === this.offsetAt(start + HOUR_MS + DAY_MS) ? before : Number.NaN;
        if (this.steadyHours.size > CACHE_MAX) this.steadyHours.clear();
        this.steadyHours.set(key, steady);
      }
      if (!Number.isNaN(steady)) return { kind: 'exact', t: wall - steady };
    }
    const before = this.offsetAt(wall - DAY_MS);
    const after = this.offsetAt(wall + DAY_MS);
    const candidates: number[] = [];
    for (const o of before === after ? [before] : [before, after]) {
      const t = wall - o;
      if (this.offsetAt(t) === o) candidates.push(t);
    }
    if (candidates.length === 0) {
      // Both offsets around the day may match neither when a transition is near: try the exact one.
      const o = this.offsetAt(wall - before);
      if (this.offsetAt(wall - o) === o) return { kind: 'exact', t: wall - o };
      return { kind: 'nonexistent' };
    }
    if (candidates.length === 1) return { kind: 'exact', t: candidates[0]! };
    candidates.sort((a, b) => a - b);
    return { kind: 'ambiguous', earlier: candidates[0]!, later: candidates[1]! };
  }
}

/** Applies the file-order rule above: earliest candidate not before `previous`. */
export function pickInstant(r: WallTimeResolution, previous: number | undefined): number | undefined {
  if (r.kind === 'exact') return r.t;
  if (r.kind === 'nonexistent') return undefined;
  if (previous !== undefined && r.earlier < previous && r.later >= previous) return r.later;
  return r.earlier;
}
