import { z } from 'zod';
import { DATAPOINT_ID } from '../../core/datapoint.js';
import { tariffSchema } from '../../core/tariff.js';

const id = z.string().regex(DATAPOINT_ID, 'expected a datapoint id');

/** A power datapoint in a role: its id, or the id with a label and a sign flip. */
const powerRef = z.union([
  id,
  z.strictObject({
    datapoint: id,
    /** Shown on the picture; the datapoint's description or id when absent. */
    label: z.string().max(40).optional(),
    /** The meter counts the other way round from the convention below. */
    invert: z.boolean().default(false),
  }),
]);

const powerRefs = z.array(powerRef).max(32);

/**
 * What the site's datapoints are, so the Overview draws its power flow and the Energy page
 * adds up its counters on any site. Roles left out are found by their ids (runtime/site/roles.ts);
 * `[]` says "none here".
 *
 * Sign conventions (W or kW): grid + import / − export; pv ≥ 0 produced; battery + discharging
 * (power into the site) / − charging (as Home Assistant's energy dashboard); loads and chargers
 * ≥ 0 drawn. `invert: true` flips a meter that counts the other way.
 */
export const siteSchema = z
  .strictObject({
    power: z
      .strictObject({
        /** The grid connection meter. */
        grid: powerRef.optional(),
        pv: powerRefs.optional(),
        battery: powerRefs.optional(),
        /** State of charge (%) of the batteries, in the order of `battery`. */
        batterySoc: z.array(id).max(32).optional(),
        /** Named consumers drawn on their own; the rest of the site shows as "other loads". */
        loads: powerRefs.optional(),
        /** Charging points; absent: every OCPP connector's power (`<prefix>.<charger>.<connector>.power`). */
        chargers: powerRefs.optional(),
      })
      .prefault({}),
    /** Energy counters (Wh, kWh, MWh) by what they count; left out: classified by `meta.energy` or their ids. */
    energy: z
      .strictObject({
        import: z.array(id).max(64).optional(),
        export: z.array(id).max(64).optional(),
        production: z.array(id).max(64).optional(),
        consumption: z.array(id).max(64).optional(),
      })
      .prefault({}),
    tariff: tariffSchema.prefault({}),
  })
  .prefault({});

export type SiteConfig = z.output<typeof siteSchema>;
export type PowerRef = z.output<typeof powerRef>;
