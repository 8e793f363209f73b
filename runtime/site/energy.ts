import type { Datapoint } from '../../core/datapoint.js';
import { periodEdges, priceAtLocal, WEEKDAYS, type PriceSchedule, type Tariff, type Weekday } from '../../core/tariff.js';
import type { Store } from '../../storage/store.js';
import type { SiteConfig } from './config.js';
import { classifyCounters, type EnergyCounter, type RoleStatus } from './energy-roles.js';
import { energyPeriod, offsetMinutes, type EnergyPeriod, type LocalDate, type PeriodKind } from './energy-periods.js';

/**
 * The Energy page's figures (issue 24 item 3), as Home Assistant's energy dashboard and
 * Victron VRM count them, for a local day, week, month or year:
 *
 * - import, export, production, battery charge / discharge: the sum of their counters' deltas
 *   (the store's `delta` aggregation over its 1 h or 15 min rollups: reset-aware, the step from
 *   the reading before an interval counted in it), summed into local hours, days or months;
 * - consumption: the counters of `site.energy.consumption` when configured (a meter of the whole
 *   site's load), else the balance import + production − export + battery discharge − battery
 *   charge. Battery counters are optional: without any, battery terms count 0, so energy
 *   stored and not yet used counts as consumed when charged (and not when discharged);
 * - self-consumed = production − export; self-consumption % = self-consumed / production;
 *   self-sufficiency % = (consumption − import) / consumption;
 * - cost = Σ import kWh × import price, earnings = Σ export kWh × export price, per rollup
 *   interval at its start (`priceAt`), so time-of-use prices are exact; net cost = cost − earnings.
 *
 * A figure that needs a role with no counters (and no `site.energy.<role>: []` saying "none
 * here") is null, never 0; buckets that have not begun are null.
 */

/** Counters added up per role at most (as `site.energy` lists at most): each costs one rollup query. */
export const MAX_COUNTERS_PER_ROLE = 64;

/** What one figure is summed from. */
type Quantity = 'import' | 'export' | 'production' | 'consumption' | 'battery_charge' | 'battery_discharge';
const QUANTITIES: readonly Quantity[] = ['import', 'export', 'production', 'consumption', 'battery_charge', 'battery_discharge'];

export interface EnergyFigures {
  import: number | null;
  export: number | null;
  production: number | null;
  consumption: number | null;
  selfConsumed: number | null;
  batteryCharge: number | null;
  batteryDischarge: number | null;
  /** What the imported kWh cost, in `currency`. */
  cost: number | null;
  /** What the exported kWh earned, in `currency`. */
  earnings: number | null;
}

export interface EnergyTotals extends EnergyFigures {
  /** cost − earnings (earnings count 0 without an export price). */
  netCost: number | null;
  /** % of production used on site. */
  selfConsumption: number | null;
  /** % of consumption not imported. */
  selfSufficiency: number | null;
}

export interface UsedCounter extends EnergyCounter {
  /** Added up into its role's figures. */
  used: boolean;
  /** Why it is not added up. */
  note?: string;
  /** Readings of it in the period (0: none, its figures count nothing). */
  readings: number;
}

export interface EnergyReport extends Omit<EnergyPeriod, 'buckets'> {
  timezone: string;
  /** When the figures were read: buckets starting later are null. */
  now: number;
  /** Rollup interval summed and priced: `1h`, or `15m` where the zone or a tariff period is off the hour. */
  interval: '1h' | '15m';
  currency: string;
  tariff: { import?: PriceSchedule; export?: PriceSchedule };
  buckets: Array<EnergyPeriod['buckets'][number] & EnergyFigures>;
  totals: EnergyTotals;
  /** Where consumption comes from: its own counters, the balance of the others, or nowhere. */
  consumptionFrom: 'counters' | 'balance' | null;
  roles: Record<Quantity, RoleStatus>;
  counters: UsedCounter[];
  /** What a technician should look at (roles without counters, counters added up that may overlap). */
  warnings: string[];
}

export interface EnergyDeps {
  store: Pick<Store, 'queryAggregate'>;
  datapoints: readonly Datapoint[];
  energy: SiteConfig['energy'];
  tariff: Tariff;
  timezone: string;
  now: number;
}

const HOUR = 3_600_000;
const QUARTER = 900_000;

/** 1 h, unless a bucket edge (a zone off the whole hour) or a tariff period edge is not on the hour. */
export function pricingInterval(period: EnergyPeriod, tariff: Tariff): number {
  const edges = [period.start, period.end, ...period.buckets.map((b) => b.start)];
  const offHour = edges.some((t) => t % HOUR !== 0) || [...periodEdges(tariff.import), ...periodEdges(tariff.export)].some((m) => m % 60 !== 0);
  return offHour ? QUARTER : HOUR;
}

/** Zone offsets hold for at least this long: no zone changes its offset twice within 6 h. */
const OFFSET_WINDOW = 6 * HOUR;

/**
 * The local weekday and minute of day of each interval start, for time-of-use prices: the zone's
 * offset is asked of Intl at both ends of each 6 h window and per interval only in a window where
 * it changes (a DST day), ~3,000 calls for a year of hours instead of one per interval and price.
 */
function localClock(start: number, interval: number, intervals: number, timeZone: string): (i: number) => { day: Weekday; minute: number } {
  const offsets = new Int32Array(intervals);
  const perWindow = Math.max(1, Math.floor(OFFSET_WINDOW / interval));
  for (let i = 0; i < intervals; i += perWindow) {
    const n = Math.min(perWindow, intervals - i);
    const t = start + i * interval;
    const first = offsetMinutes(t, timeZone);
    if (first === offsetMinutes(t + n * interval, timeZone)) offsets.fill(first, i, i + n);
    else for (let k = 0; k < n; k++) offsets[i + k] = offsetMinutes(t + k * interval, timeZone);
  }
  return (i) => {
    const local = Math.floor((start + i * interval) / 60_000) + offsets[i]!;
    const days = Math.floor(local / 1440);
    // 1970-01-01 was a Thursday (WEEKDAYS starts on Monday).
    return { day: WEEKDAYS[(((days + 3) % 7) + 7) % 7]!, minute: local - days * 1440 };
  };
}

const round = (x: number | null, digits: number): number | null => (x === null ? null : Math.round(x * 10 ** digits) / 10 ** digits);

/** Which counters each quantity adds up, and why the others are not. */
function choose(counters: readonly EnergyCounter[], roles: Record<Quantity, RoleStatus>, warnings: string[]): Map<string, Quantity> {
  const used = new Map<string, Quantity>();
  for (const q of QUANTITIES) {
    const mine = counters.filter((c) => c.role === q && c.kwhPerUnit !== null && !c.problem);
    const picked = roles[q] === 'configured' ? mine.filter((c) => c.source === 'configured') : q === 'consumption' ? [] : mine;
    for (const c of picked.slice(0, MAX_COUNTERS_PER_ROLE)) used.set(c.id, q);
    if (picked.length > MAX_COUNTERS_PER_ROLE) {
      warnings.push(`${picked.length} ${q} counters: only the first ${MAX_COUNTERS_PER_ROLE} are added up; list the right ones in site.energy.${q}`);
    }
    if (roles[q] === 'found' && q !== 'consumption' && picked.length > 1) {
      const fix =
        q === 'battery_charge' || q === 'battery_discharge' ? `set meta.energy: ${q} on the site's own only` : `list the site's own in site.energy.${q}`;
      warnings.push(
        `${picked.length} ${q} counters found by meta.energy or their ids are added up (${picked.map((c) => c.id).join(', ')}): if one is a sub-meter, ${fix}.`,
      );
    }
  }
  return used;
}

function notUsedNote(c: EnergyCounter, roles: Record<Quantity, RoleStatus>): string {
  if (c.problem) return c.problem;
  if (c.role === 'total') return 'import + export register: not added up (its import and export registers are)';
  if (c.role === 'consumption')
    return roles.consumption === 'configured'
      ? 'site.energy.consumption lists the site consumption counters'
      : 'a sub-meter: site consumption is the balance of the grid, production and battery counters';
  if (c.role && roles[c.role as Quantity] === 'configured') return `site.energy.${c.role} lists the ${c.role} counters`;
  return `more than ${MAX_COUNTERS_PER_ROLE} ${c.role} counters`;
}

const HINTS: Partial<Record<Quantity, string>> = {
  import: 'No grid import counter: import, consumption, self-sufficiency and cost cannot be figured (list it in site.energy.import).',
  export: 'No grid export counter: export, self-consumption and earnings cannot be figured (site.energy.export: [] says the site never feeds in).',
  production: 'No production counter: production and self-consumption cannot be figured (site.energy.production: [] says the site has no PV or generator).',
};

/** The site's energy figures for the `kind` period containing local date `at`. */
export async function siteEnergy(deps: EnergyDeps, kind: PeriodKind, at: LocalDate): Promise<EnergyReport> {
  const period = energyPeriod(kind, at, deps.timezone);
  const interval = pricingInterval(period, deps.tariff);
  const { counters, roles: found } = classifyCounters(deps.datapoints, deps.energy);
  const roles: Record<Quantity, RoleStatus> = found;
  const warnings: string[] = [];
  const used = choose(counters, roles, warnings);
  for (const [q, hint] of Object.entries(HINTS)) if (roles[q as Quantity] === 'none') warnings.push(hint);
  for (const c of counters) if (c.problem && c.source === 'configured') warnings.push(`${c.why} ${c.id}: ${c.problem}`);

  const n = period.buckets.length;
  const sums = new Map<Quantity, Float64Array>(QUANTITIES.map((q) => [q, new Float64Array(n)]));
  const cost = new Float64Array(n);
  const earnings = new Float64Array(n);
  // The bucket of each rollup interval, and its prices, worked out once for all counters.
  const intervals = Math.round((period.end - period.start) / interval);
  const bucketOf = new Int32Array(intervals);
  for (let b = 0, i = 0; i < intervals; i++) {
    while (b < n - 1 && period.start + i * interval >= period.buckets[b]!.end) b++;
    bucketOf[i] = b;
  }
  const prices = { import: new Float64Array(intervals).fill(Number.NaN), export: new Float64Array(intervals).fill(Number.NaN) };
  let clock: ((i: number) => { day: Weekday; minute: number }) | undefined;
  const price = (dir: 'import' | 'export', i: number): number => {
    const schedule = deps.tariff[dir];
    if (schedule === undefined) return 0;
    if (schedule.periods.length === 0) return schedule.default;
    if (Number.isNaN(prices[dir][i]!)) {
      clock ??= localClock(period.start, interval, intervals, deps.timezone);
      prices[dir][i] = priceAtLocal(schedule, clock(i)).price;
    }
    return prices[dir][i]!;
  };

  const readings = new Map<string, number>();
  // One counter at a time, folded into per-bucket sums: memory stays at one counter's
  // intervals (8,784 for a year of hours), however many counters a role has.
  for (const c of counters) {
    const q = used.get(c.id);
    if (!q || period.start >= deps.now) continue;
    const points = await deps.store.queryAggregate(c.id, { from: period.start, to: period.end - 1, interval, agg: 'delta' });
    let count = 0;
    for (const p of points) {
      const i = Math.floor((p.t - period.start) / interval);
      if (i < 0 || i >= intervals) continue;
      const kwh = p.v * c.kwhPerUnit!;
      const b = bucketOf[i]!;
      sums.get(q)![b]! += kwh;
      if (q === 'import') cost[b]! += kwh * price('import', i);
      if (q === 'export') earnings[b]! += kwh * price('export', i);
      count += p.count;
    }
    readings.set(c.id, count);
  }

  const measured = roles.consumption === 'configured';
  const has = (q: Quantity) => roles[q] !== 'none';
  const buckets = period.buckets.map((bucket, b) => {
    const begun = bucket.start < deps.now;
    const v = (q: Quantity): number | null => (begun && has(q) ? sums.get(q)![b]! : null);
    const imp = v('import');
    const exp = v('export');
    const prod = v('production');
    const battery = (v('battery_discharge') ?? 0) - (v('battery_charge') ?? 0);
    const consumption = measured ? v('consumption') : imp !== null && exp !== null && prod !== null ? imp + prod - exp + battery : null;
    return {
      ...bucket,
      import: imp,
      export: exp,
      production: prod,
      consumption,
      selfConsumed: prod !== null && exp !== null ? prod - exp : null,
      batteryCharge: v('battery_charge'),
      batteryDischarge: v('battery_discharge'),
      cost: imp !== null && deps.tariff.import !== undefined ? cost[b]! : null,
      earnings: exp !== null && deps.tariff.export !== undefined ? earnings[b]! : null,
    };
  });

  const total = (k: keyof EnergyFigures): number | null => {
    let s: number | null = null;
    for (const b of buckets) if (b[k] !== null) s = (s ?? 0) + b[k]!;
    return s;
  };
  const t: EnergyFigures = {
    import: total('import'),
    export: total('export'),
    production: total('production'),
    consumption: total('consumption'),
    selfConsumed: total('selfConsumed'),
    batteryCharge: total('batteryCharge'),
    batteryDischarge: total('batteryDischarge'),
    cost: total('cost'),
    earnings: total('earnings'),
  };
  const pct = (part: number | null, whole: number | null) => (part !== null && whole !== null && whole > 0 ? (part / whole) * 100 : null);
  const totals: EnergyTotals = {
    ...roundFigures(t),
    netCost: round(t.cost === null ? null : t.cost - (t.earnings ?? 0), 6),
    selfConsumption: round(pct(t.selfConsumed, t.production), 2),
    selfSufficiency: round(pct(t.consumption !== null && t.import !== null ? t.consumption - t.import : null, t.consumption), 2),
  };

  const { buckets: _, ...rest } = period;
  return {
    ...rest,
    timezone: deps.timezone,
    now: deps.now,
    interval: interval === HOUR ? '1h' : '15m',
    currency: deps.tariff.currency,
    tariff: {
      ...(deps.tariff.import !== undefined ? { import: deps.tariff.import } : {}),
      ...(deps.tariff.export !== undefined ? { export: deps.tariff.export } : {}),
    },
    buckets: buckets.map((b) => ({ ...b, ...roundFigures(b) })),
    totals,
    consumptionFrom: measured ? 'counters' : totals.consumption !== null ? 'balance' : null,
    roles,
    counters: counters
      .filter((c) => c.role !== null)
      .map((c) => {
        const q = used.get(c.id);
        return { ...c, used: q !== undefined, readings: readings.get(c.id) ?? 0, ...(q === undefined ? { note: notUsedNote(c, roles) } : {}) };
      }),
    warnings,
  };
}

const FIGURES: ReadonlyArray<keyof EnergyFigures> = [
  'import',
  'export',
  'production',
  'consumption',
  'selfConsumed',
  'batteryCharge',
  'batteryDischarge',
  'cost',
  'earnings',
];

/** The figures of `f`, rounded to 6 decimals (1 mWh, a millionth of the currency): no float noise such as 0.30000000000000004. */
function roundFigures(f: EnergyFigures): EnergyFigures {
  return Object.fromEntries(FIGURES.map((k) => [k, round(f[k], 6)])) as unknown as EnergyFigures;
}
