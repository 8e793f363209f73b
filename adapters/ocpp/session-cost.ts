/**
 * What a charging session cost, with the site tariff (`site.tariff`, the service
 * ('tariff', 'site'), runtime/site/services.ts). Pure: a price function in, figures out.
 *
 * - A session with energy readings in its meter values (Energy.Active.Import.Register) is priced
 *   per interval between two readings, at the import price in force at the interval's middle,
 *   as the readings arrive (so a time-of-use change during a session is priced on each side of
 *   it); the interval from the last reading to StopTransaction's meterStop is priced the same way.
 *   `costBasis: 'samples'`.
 * - A session without such readings is priced as a whole at the import price of its start:
 *   `costBasis: 'start-hour'`.
 *
 * The running figures live in the session record (`pricing`), so listing 10,000 sessions reads
 * no meter values. A tariff without an import price gives no cost (and says so in `costNote`).
 */

export interface Price {
  /** Per kWh, in `currency`. */
  price: number;
  currency: string;
}

/** The import price at `t` (epoch ms); undefined when the tariff has none. */
export type PriceAt = (t: number) => Price | undefined;

/** The running cost of a session, kept in its record. */
export interface CostAccumulator {
  /** Energy register (Wh) and time of the last reading priced. */
  wh: number;
  at: number;
  cost: number;
  currency?: string;
  /** Intervals priced so far (0: no energy reading yet). */
  intervals: number;
  /** Why the cost is unknown (an interval could not be priced). */
  unpriced?: string;
}

export interface SessionCost {
  cost?: number;
  currency?: string;
  /** How `cost` was priced (absent with no cost). */
  costBasis?: 'samples' | 'start-hour';
  /** Why there is no cost. */
  costNote?: string;
}

const NO_PRICE = 'the site tariff has no import price';

export function startPricing(meterStartWh: number, start: number): CostAccumulator {
  return { wh: meterStartWh, at: start, cost: 0, intervals: 0 };
}

/**
 * Prices the intervals up to each new energy reading (register in Wh, time in ms). Readings not
 * after the last one priced, and a register that went down (a replaced meter), are not priced.
 */
export function priceReadings(acc: CostAccumulator, readings: ReadonlyArray<{ t: number; wh: number }>, priceAt: PriceAt): CostAccumulator {
  const next = { ...acc };
  for (const r of [...readings].sort((a, b) => a.t - b.t)) {
    if (r.t <= next.at || r.wh < next.wh) continue;
    const kwh = (r.wh - next.wh) / 1000;
    if (kwh > 0 && next.unpriced === undefined) {
      const p = priceAt(next.at + (r.t - next.at) / 2);
      if (!p) next.unpriced = NO_PRICE;
      else if (next.currency !== undefined && p.currency !== next.currency)
        next.unpriced = `the tariff currency changed during the session (${next.currency} → ${p.currency})`;
      else {
        next.cost += kwh * p.price;
        next.currency = p.currency;
      }
    }
    next.wh = r.wh;
    next.at = r.t;
    next.intervals++;
  }
  return next;
}

/** The cost of a session as REST, the CSV and the dashboard show it (4 decimals). */
export function sessionCost(session: { start: number; energyKwh: number; pricing?: CostAccumulator }, priceAt: PriceAt): SessionCost {
  const acc = session.pricing;
  if (acc && acc.intervals > 0) {
    if (acc.unpriced !== undefined) return { costNote: acc.unpriced };
    if (acc.currency === undefined) {
      // Every interval was 0 kWh: nothing to pay, in the tariff's currency of the start.
      const p = priceAt(session.start);
      return p ? { cost: 0, currency: p.currency, costBasis: 'samples' } : { costNote: NO_PRICE };
    }
    return { cost: round4(acc.cost), currency: acc.currency, costBasis: 'samples' };
  }
  const p = priceAt(session.start);
  if (!p) return { costNote: NO_PRICE };
  return { cost: round4(session.energyKwh * p.price), currency: p.currency, costBasis: 'start-hour' };
}

function round4(x: number): number {
  return Math.round(x * 10_000) / 10_000;
}
