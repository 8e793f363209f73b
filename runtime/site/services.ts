import type { EventSink } from '../../core/events.js';
import { priceAt, type Tariff } from '../../core/tariff.js';
import type { SiteConfig } from './config.js';

/** The site's tariff as a service: what a kWh cost (import) or earned (export) at a moment. */
export interface TariffService {
  currency: string;
  /** Price per kWh at `t`; undefined when the tariff has no price for that direction. */
  priceAt(t: number, direction: 'import' | 'export'): number | undefined;
}

declare module '../services.js' {
  interface ServiceTypes {
    /** The site's tariff (`site.tariff`), name `site`: adapters price sessions with it (OCPP charging costs). */
    tariff: TariffService;
    /** The gateway's event log, name `gateway` (core/events.ts): adapters record faults and actions in it. */
    events: EventSink;
  }
}

export function tariffService(tariff: Tariff, timeZone: string): TariffService {
  return {
    currency: tariff.currency,
    priceAt(t, direction) {
      const schedule = tariff[direction];
      return schedule === undefined ? undefined : priceAt(schedule, t, timeZone).price;
    },
  };
}

/** What the site routes read (runtime/http/routes.ts `site`). */
export interface SiteDeps {
  config: SiteConfig;
  /** `gateway.timezone`: local hours, days and months, and time-of-use periods. */
  timezone: string;
  tariff: TariffService;
}
