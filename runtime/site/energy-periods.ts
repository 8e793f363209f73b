import { OutpostError } from '../../core/errors.js';

/**
 * Local calendar periods of the Energy page in the site's time zone (`gateway.timezone`):
 * a day of local hours, a week (Monday first, ISO 8601) or month of local days, a year of
 * local months. Calendar arithmetic is done on plain dates (Date.UTC, no zone); only the
 * instants where local days start are asked of Intl, so DST days have 23 or 25 hours.
 */
export const PERIOD_KINDS = ['day', 'week', 'month', 'year'] as const;
export type PeriodKind = (typeof PERIOD_KINDS)[number];

/** A calendar date: month 1-12. */
export interface LocalDate {
  y: number;
  m: number;
  d: number;
}

export interface PeriodBucket {
  /** Epoch ms, inclusive. */
  start: number;
  /** Epoch ms, exclusive. */
  end: number;
  /** Short, for a chart axis: `07`, `Mon`, `5`, `May`. */
  label: string;
  /** Whole, for a table row: `07:00–08:00`, `Mon 5 May`, `May 2025`. */
  name: string;
}

export interface EnergyPeriod {
  kind: PeriodKind;
  /** The first local day of the period, `YYYY-MM-DD`. */
  date: string;
  title: string;
  start: number;
  end: number;
  bucket: 'hour' | 'day' | 'month';
  buckets: PeriodBucket[];
  /** First day of the period before and after, `YYYY-MM-DD`. */
  previous: string;
  next: string;
}

const HOUR = 3_600_000;
const MINUTE = 60_000;
const WEEKDAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** Formatters by zone (building one costs ~100× a format call); bounded by the zones in use. */
const formats = new Map<string, Intl.DateTimeFormat>();
function format(timeZone: string): Intl.DateTimeFormat {
  let f = formats.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', hourCycle: 'h23' });
    if (formats.size >= 16) formats.clear();
    formats.set(timeZone, f);
  }
  return f;
}

/** Local date and time of `t` in `timeZone`. */
export function localParts(t: number, timeZone: string): LocalDate & { hh: number; mm: number } {
  const out = { y: 0, m: 0, d: 0, hh: 0, mm: 0 };
  for (const p of format(timeZone).formatToParts(t)) {
    if (p.type === 'year') out.y = Number(p.value);
    else if (p.type === 'month') out.m = Number(p.value);
    else if (p.type === 'day') out.d = Number(p.value);
    else if (p.type === 'hour') out.hh = Number(p.value) % 24;
    else if (p.type === 'minute') out.mm = Number(p.value);
  }
  return out;
}

/** The zone's offset from UTC at `t`, in minutes (east positive). */
export function offsetMinutes(t: number, timeZone: string): number {
  const p = localParts(t, timeZone);
  const wall = Date.UTC(p.y, p.m - 1, p.d, p.hh, p.mm);
  return Math.round((wall - Math.floor(t / MINUTE) * MINUTE) / MINUTE);
}

const key = (d: LocalDate): number => d.y * 10_000 + d.m * 100 + d.d;

/** The calendar date `days` days after `d` (negative: before). */
export function addDays(d: LocalDate, days: number): LocalDate {
  const u = new Date(Date.UTC(d.y, d.m - 1, d.d + days));
  return { y: u.getUTCFullYear(), m: u.getUTCMonth() + 1, d: u.getUTCDate() };
}

function addMonths(d: LocalDate, months: number): LocalDate {
  const u = new Date(Date.UTC(d.y, d.m - 1 + months, 1));
  return { y: u.getUTCFullYear(), m: u.getUTCMonth() + 1, d: 1 };
}

/** Monday 0 … Sunday 6 of a calendar date. */
function weekday(d: LocalDate): number {
  return (new Date(Date.UTC(d.y, d.m - 1, d.d)).getUTCDay() + 6) % 7;
}

export const isoDate = (d: LocalDate): string => `${String(d.y).padStart(4, '0')}-${String(d.m).padStart(2, '0')}-${String(d.d).padStart(2, '0')}`;

/**
 * The first instant of local date `d`: local midnight, or the first minute after it where a
 * DST change skips midnight. Found by bisection over whole minutes within ±18 h of UTC
 * midnight (every zone's offset is within ±14 h), since local dates only move forward.
 */
export function dayStart(d: LocalDate, timeZone: string): number {
  const want = key(d);
  const utcMidnight = Date.UTC(d.y, d.m - 1, d.d);
  let lo = (utcMidnight - 18 * HOUR) / MINUTE; // local date before d
  let hi = (utcMidnight + 18 * HOUR) / MINUTE; // local date d or after
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (key(localParts(mid * MINUTE, timeZone)) >= want) hi = mid;
    else lo = mid;
  }
  return hi * MINUTE;
}

/** The local date of an instant. */
export function localDate(t: number, timeZone: string): LocalDate {
  const { y, m, d } = localParts(t, timeZone);
  return { y, m, d };
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/**
 * The local date `at` names: `YYYY-MM-DD` is that calendar date in the site's zone; epoch ms or
 * an ISO 8601 date-time is the local date of that instant; absent: today. Years 1970-9999.
 */
export function parseAt(raw: unknown, timeZone: string, now: number): LocalDate {
  if (raw === undefined || raw === '') return localDate(now, timeZone);
  if (typeof raw !== 'string') throw new OutpostError('BAD_REQUEST', '"at" must be given once');
  const m = DATE.exec(raw);
  let date: LocalDate;
  if (m) {
    date = { y: Number(m[1]), m: Number(m[2]), d: Number(m[3]) };
    const u = new Date(Date.UTC(date.y, date.m - 1, date.d));
    if (date.m < 1 || date.m > 12 || u.getUTCMonth() !== date.m - 1 || u.getUTCDate() !== date.d) {
      throw new OutpostError('BAD_REQUEST', `"at" is not a calendar date: "${raw}"`);
    }
  } else {
    const t = /^-?\d{1,15}$/.test(raw) ? Number(raw) : Date.parse(raw);
    if (!Number.isFinite(t) || Math.abs(t) > 8.64e15) {
      throw new OutpostError('BAD_REQUEST', `"at" must be a date (YYYY-MM-DD), epoch milliseconds or an ISO 8601 date-time, got "${raw}"`);
    }
    date = localDate(t, timeZone);
  }
  if (date.y < 1970 || date.y > 9999) throw new OutpostError('BAD_REQUEST', `"at" must fall in the years 1970 to 9999, got "${raw}"`);
  return date;
}

export function parsePeriodKind(raw: unknown): PeriodKind {
  if (raw === undefined || raw === '') return 'day';
  if (typeof raw === 'string' && (PERIOD_KINDS as readonly string[]).includes(raw)) return raw as PeriodKind;
  throw new OutpostError('BAD_REQUEST', `"period" must be one of ${PERIOD_KINDS.join(', ')}, got "${String(raw)}"`);
}

const hhmm = (p: { hh: number; mm: number }): string => `${String(p.hh).padStart(2, '0')}:${String(p.mm).padStart(2, '0')}`;

function utcOffsetText(minutes: number): string {
  const a = Math.abs(minutes);
  return `UTC${minutes < 0 ? '−' : '+'}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

/** ISO 8601 week number of a date (the week with the year's first Thursday is week 1). */
function isoWeek(d: LocalDate): number {
  const thursday = addDays(d, 3 - weekday(d));
  const jan1 = Date.UTC(thursday.y, 0, 1);
  return Math.floor((Date.UTC(thursday.y, thursday.m - 1, thursday.d) - jan1) / 86_400_000 / 7) + 1;
}

const dayName = (d: LocalDate): string => `${WEEKDAYS[weekday(d)]} ${d.d} ${MONTHS[d.m - 1]!.slice(0, 3)}`;

/** The period of `kind` containing local date `at`, with its buckets. */
export function energyPeriod(kind: PeriodKind, at: LocalDate, timeZone: string): EnergyPeriod {
  if (kind === 'day') {
    const start = dayStart(at, timeZone);
    const end = dayStart(addDays(at, 1), timeZone);
    const buckets: PeriodBucket[] = [];
    // Local hours are 1 h long in every zone's whole- and half-hour offsets; a 30 min DST
    // change (Lord Howe) leaves one shorter bucket.
    for (let t = start; t < end; t += HOUR) {
      const p = localParts(t, timeZone);
      const e = Math.min(t + HOUR, end);
      // Named by wall-clock start and length: the first 02:00 of a fall-back day ends at 02:00 again.
      const until = (p.hh * 60 + p.mm + (e - t) / MINUTE) % 1440;
      const name = `${hhmm(p)}–${hhmm({ hh: Math.floor(until / 60), mm: until % 60 })}`;
      buckets.push({ start: t, end: e, label: String(p.hh).padStart(2, '0'), name });
    }
    // The hour a DST change repeats: both named with their UTC offset.
    const names = buckets.map((b) => b.name);
    for (const b of buckets) if (names.indexOf(b.name) !== names.lastIndexOf(b.name)) b.name += ` (${utcOffsetText(offsetMinutes(b.start, timeZone))})`;
    return {
      kind,
      date: isoDate(at),
      title: `${dayName(at)} ${at.y}`,
      start,
      end,
      bucket: 'hour',
      buckets,
      previous: isoDate(addDays(at, -1)),
      next: isoDate(addDays(at, 1)),
    };
  }
  if (kind === 'week' || kind === 'month') {
    const first = kind === 'week' ? addDays(at, -weekday(at)) : { y: at.y, m: at.m, d: 1 };
    const after = kind === 'week' ? addDays(first, 7) : addMonths(first, 1);
    const days: LocalDate[] = [];
    for (let d = first; key(d) < key(after); d = addDays(d, 1)) days.push(d);
    const edges = [...days, after].map((d) => dayStart(d, timeZone));
    const last = days[days.length - 1]!;
    const title = kind === 'week' ? `Week ${isoWeek(first)}: ${dayName(first)} – ${dayName(last)} ${last.y}` : `${MONTHS[first.m - 1]} ${first.y}`;
    return {
      kind,
      date: isoDate(first),
      title,
      start: edges[0]!,
      end: edges[edges.length - 1]!,
      bucket: 'day',
      buckets: days.map((d, i) => ({ start: edges[i]!, end: edges[i + 1]!, label: kind === 'week' ? WEEKDAYS[weekday(d)]! : String(d.d), name: dayName(d) })),
      previous: isoDate(kind === 'week' ? addDays(first, -7) : addMonths(first, -1)),
      next: isoDate(after),
    };
  }
  const months = Array.from({ length: 13 }, (_, i) => ({ y: at.y + Math.floor(i / 12), m: (i % 12) + 1, d: 1 }));
  const edges = months.map((d) => dayStart(d, timeZone));
  return {
    kind,
    date: isoDate(months[0]!),
    title: String(at.y),
    start: edges[0]!,
    end: edges[12]!,
    bucket: 'month',
    buckets: months
      .slice(0, 12)
      .map((d, i) => ({ start: edges[i]!, end: edges[i + 1]!, label: MONTHS[d.m - 1]!.slice(0, 3), name: `${MONTHS[d.m - 1]} ${d.y}` })),
    previous: isoDate({ y: at.y - 1, m: 1, d: 1 }),
    next: isoDate({ y: at.y + 1, m: 1, d: 1 }),
  };
}
