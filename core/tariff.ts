import { z } from 'zod';

/**
 * Energy prices: a flat price per kWh, or time-of-use periods in the gateway's local time
 * (`gateway.timezone`). The first period that covers a moment sets its price; `default`
 * covers the rest. A period may wrap midnight (`from: '22:00', to: '06:00'`).
 *
 * Periods start and end on a quarter hour: the Energy page prices the counters' 1 h or 15 min
 * rollup intervals (runtime/site/energy.ts), so a price must not change inside one (meters and
 * day-ahead markets settle in 15 min steps too).
 */
const HHMM = /^([01]\d|2[0-3]):(00|15|30|45)$|^24:00$/;
const HHMM_MESSAGE = 'expected HH:MM (24 h) on a quarter hour (:00, :15, :30, :45)';
export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

const price = z.number().min(-100).max(100);

const periodSchema = z
  .strictObject({
    /** Days the period applies on (local time); all days when absent. */
    days: z.array(z.enum(WEEKDAYS)).min(1).max(7).optional(),
    from: z.string().regex(HHMM, HHMM_MESSAGE),
    to: z.string().regex(HHMM, HHMM_MESSAGE),
    /** Price per kWh in `currency`. */
    price,
    /** Shown beside the price, e.g. "peak". */
    name: z.string().max(32).optional(),
  })
  .refine((p) => p.from !== p.to, 'from and to must differ (use the flat price for a whole day)');

const scheduleObject = z.strictObject(
  {
    /** Price per kWh outside every period. */
    default: price,
    periods: z.array(periodSchema).max(48).default([]),
  },
  { error: (issue) => (issue.code === 'invalid_type' ? 'expected a price per kWh (a number) or { default, periods }' : undefined) },
);

/**
 * A flat price (a number) or time-of-use `{ default, periods }`; a number is read as
 * `{ default: n, periods: [] }`, so a mistake inside the periods is reported where it is
 * (a union of the two would only say "Invalid input" for the whole schedule).
 */
export const priceScheduleSchema = z.preprocess((v) => (typeof v === 'number' ? { default: v, periods: [] } : v), scheduleObject);

export const tariffSchema = z.strictObject({
  /** ISO 4217 code shown with costs. */
  currency: z
    .string()
    .regex(/^[A-Z]{3}$/, 'expected an ISO 4217 code such as EUR')
    .default('EUR'),
  /** What a kWh bought from the grid costs. */
  import: priceScheduleSchema.optional(),
  /** What a kWh sold to the grid earns (feed-in). */
  export: priceScheduleSchema.optional(),
});

export type PriceSchedule = z.output<typeof priceScheduleSchema>;
export type Tariff = z.output<typeof tariffSchema>;

const minutesOf = (hhmm: string): number => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** Minutes of day where a time-of-use period starts or ends (the Energy page picks its pricing interval from them). */
export function periodEdges(schedule: PriceSchedule | number | undefined): number[] {
  if (schedule === undefined || typeof schedule === 'number') return [];
  return schedule.periods.flatMap((p) => [minutesOf(p.from), minutesOf(p.to)]);
}

/**
 * Formatters by time zone: building an Intl.DateTimeFormat costs ~100× a format call, and a
 * year of hourly prices asks for 8,784 of them. Bounded by the zones in use (one, in practice).
 */
const weekdayFormats = new Map<string, Intl.DateTimeFormat>();
function weekdayFormat(timeZone: string): Intl.DateTimeFormat {
  let f = weekdayFormats.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', { timeZone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    if (weekdayFormats.size >= 16) weekdayFormats.clear();
    weekdayFormats.set(timeZone, f);
  }
  return f;
}

/** Local weekday and minute of day of `t` in `timeZone`. */
export function localMinute(t: number, timeZone: string): { day: Weekday; minute: number } {
  const parts = weekdayFormat(timeZone).formatToParts(t);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return { day: get('weekday').toLowerCase().slice(0, 3) as Weekday, minute: Number(get('hour')) * 60 + Number(get('minute')) };
}

/** The price per kWh at `t` (epoch ms), and the name of the period that set it. */
export function priceAt(schedule: PriceSchedule | number, t: number, timeZone: string): { price: number; period?: string } {
  if (typeof schedule === 'number') return { price: schedule };
  if (schedule.periods.length === 0) return { price: schedule.default };
  return priceAtLocal(schedule, localMinute(t, timeZone));
}

/**
 * The price at a local weekday and minute of day: `priceAt` for a caller that already knows the
 * local time (the Energy page works it out once per day for a year of hourly prices).
 */
export function priceAtLocal(schedule: PriceSchedule, { day, minute }: { day: Weekday; minute: number }): { price: number; period?: string } {
  const prev = WEEKDAYS[(WEEKDAYS.indexOf(day) + 6) % 7];
  for (const p of schedule.periods) {
    const from = minutesOf(p.from);
    const to = minutesOf(p.to);
    const on = (d: Weekday) => !p.days || p.days.includes(d);
    // A period wrapping midnight belongs to the day it starts on.
    const inside = from < to ? on(day) && minute >= from && minute < to : (on(day) && minute >= from) || (on(prev) && minute < to);
    if (inside) return { price: p.price, period: p.name };
  }
  return { price: schedule.default };
}
