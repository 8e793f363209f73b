import type { Datapoint } from '../../core/datapoint.js';
import type { SiteConfig } from './config.js';

/**
 * The one classification of energy counters (issue 24): what a meter counter counts, for the
 * Energy page's sums (runtime/site/energy.ts) and the Consumption page's ranking
 * (`GET /api/site/energy/counters`, consumption.js). Rules in runtime/dashboard/README.md,
 * "Consumption figures".
 */

/** What a counter may count, as `meta.energy` names it. */
export const ENERGY_ROLES = ['import', 'export', 'production', 'consumption', 'total', 'battery_charge', 'battery_discharge'] as const;
export type EnergyRole = (typeof ENERGY_ROLES)[number];

/** The roles `site.energy` lists by name (runtime/site/config.ts). */
export const CONFIG_ROLES = ['import', 'export', 'production', 'consumption'] as const;
export type ConfigRole = (typeof CONFIG_ROLES)[number];

/** Energy units, as factors to kWh (exact case: `mWh` is not `MWh`). */
const KWH_PER_UNIT: Readonly<Record<string, number>> = { Wh: 0.001, kWh: 1, MWh: 1000 };

/** kWh per unit of an energy unit; undefined for anything else. */
export function kwhPerUnit(unit: string | undefined): number | undefined {
  return unit !== undefined && Object.hasOwn(KWH_PER_UNIT, unit) ? KWH_PER_UNIT[unit] : undefined;
}

type CounterFields = Pick<Datapoint, 'id' | 'type' | 'kind' | 'unit' | 'meta'>;

/**
 * A meter counter: a number sensor with `meta.counter: true`, or in Wh / kWh / MWh unless
 * `meta.counter: false`. A charger's `*.session_energy` restarts at 0 with every session and
 * is already counted by its energy register (adapters/ocpp): counting both would count it twice.
 */
export function isCounter(dp: CounterFields): boolean {
  if (dp.type !== 'number' || dp.kind === 'actuator') return false;
  if (dp.meta?.counter === true) return true;
  if (dp.meta?.counter === false) return false;
  if (/(^|\.)session_energy$/.test(dp.id)) return false;
  return kwhPerUnit(dp.unit) !== undefined;
}

const BATTERY_WORDS = new Set(['battery', 'batt', 'bat', 'storage', 'ess']);
const CHARGE_WORDS = new Set(['charge', 'charged', 'charging', 'in']);
const DISCHARGE_WORDS = new Set(['discharge', 'discharged', 'discharging', 'out']);
const EXPORT_WORDS = new Set(['export', 'exported', 'feed', 'feedin', 'injection']);
const IMPORT_WORDS = new Set(['import', 'imported']);
const CONSUMPTION_WORDS = new Set(['consumption', 'consumed', 'load']);
const PRODUCTION_WORDS = new Set(['pv', 'solar', 'inverter', 'production', 'produced', 'generation', 'generated', 'generator', 'yield']);

/** The words of an id: split at `.`, `_`, `-`, lower case, trailing digits dropped (`pv2` → `pv`). */
export function idWords(id: string): string[] {
  return id
    .toLowerCase()
    .split(/[._-]+/)
    .map((w) => w.replace(/\d+$/, ''))
    .filter(Boolean);
}

/**
 * What a counter counts by the words of its id, first match wins: a battery word (battery,
 * bat, storage, ess) with discharge / out / export → battery_discharge, with charge / in /
 * import → battery_charge; an export word → export; import → import; consumption, consumed,
 * load → consumption; a production word (pv, solar, inverter, …) → production; `total` →
 * total (import + export registers); anything else → consumption (a sub-meter).
 */
export function roleFromId(id: string): { role: EnergyRole; why: string } {
  const words = idWords(id);
  const has = (set: Set<string>) => words.find((w) => set.has(w));
  const battery = has(BATTERY_WORDS);
  if (battery) {
    const out = has(DISCHARGE_WORDS) ?? (words.some((w) => EXPORT_WORDS.has(w)) ? 'export' : undefined);
    if (out) return { role: 'battery_discharge', why: `id words "${battery}" and "${out}"` };
    const into = has(CHARGE_WORDS) ?? (words.some((w) => IMPORT_WORDS.has(w)) ? 'import' : undefined);
    if (into) return { role: 'battery_charge', why: `id words "${battery}" and "${into}"` };
  }
  const rules: Array<[Set<string>, EnergyRole]> = [
    [EXPORT_WORDS, 'export'],
    [IMPORT_WORDS, 'import'],
    [CONSUMPTION_WORDS, 'consumption'],
    [PRODUCTION_WORDS, 'production'],
    [new Set(['total']), 'total'],
  ];
  for (const [set, role] of rules) {
    const word = has(set);
    if (word) return { role, why: `id word "${word}"` };
  }
  return { role: 'consumption', why: 'no role word in the id: a sub-meter' };
}

/** One counter as the pages see it. */
export interface EnergyCounter {
  id: string;
  unit?: string;
  description?: string;
  /** kWh per unit of the reading; null when the unit is not Wh / kWh / MWh (a water or gas counter). */
  kwhPerUnit: number | null;
  /** What it counts; null for a counter that is not in an energy unit. */
  role: EnergyRole | null;
  /** `site.energy.<role>` (configured), `meta.energy`, or the words of the id (found). */
  source: 'configured' | 'meta' | 'found' | null;
  /** Why it has this role, for people. */
  why: string;
  /** Why it cannot be added up although configured: not registered (yet), not a number, not an energy unit. */
  problem?: string;
}

/** How each role of `site.energy` was decided: configured (a list, `[]` included), found (meta or id), none. */
export type RoleStatus = 'configured' | 'found' | 'none';

export interface CounterClassification {
  counters: EnergyCounter[];
  roles: Record<ConfigRole | 'battery_charge' | 'battery_discharge', RoleStatus>;
}

/**
 * Classifies every counter of the registry: a datapoint listed in `site.energy` has that role;
 * else `meta.energy` (one of ENERGY_ROLES) decides; else the words of its id. Ids listed in the
 * config that are not energy counters come back with a `problem`.
 */
export function classifyCounters(datapoints: readonly Datapoint[], energy: SiteConfig['energy']): CounterClassification {
  const configured = new Map<string, ConfigRole>();
  for (const role of CONFIG_ROLES) for (const id of energy[role] ?? []) if (!configured.has(id)) configured.set(id, role);
  const byId = new Map(datapoints.map((dp) => [dp.id, dp]));
  const counters: EnergyCounter[] = [];
  for (const [id, role] of configured) {
    const dp = byId.get(id);
    const where = `site.energy.${role}`;
    if (!dp) {
      counters.push({ id, kwhPerUnit: null, role, source: 'configured', why: where, problem: 'no such datapoint (yet): not added up' });
      continue;
    }
    const factor = kwhPerUnit(dp.unit) ?? null;
    const problem =
      dp.type !== 'number'
        ? `a ${dp.type} datapoint, not a counter: not added up`
        : factor === null
          ? `unit ${dp.unit ? `"${dp.unit}"` : 'missing'}, not Wh, kWh or MWh: not added up`
          : undefined;
    counters.push({ ...fields(dp), kwhPerUnit: factor, role, source: 'configured', why: where, ...(problem ? { problem } : {}) });
  }
  for (const dp of datapoints) {
    if (configured.has(dp.id) || !isCounter(dp)) continue;
    const factor = kwhPerUnit(dp.unit) ?? null;
    if (factor === null) {
      counters.push({ ...fields(dp), kwhPerUnit: null, role: null, source: null, why: 'not in an energy unit' });
      continue;
    }
    const set = dp.meta?.energy;
    if (typeof set === 'string' && (ENERGY_ROLES as readonly string[]).includes(set)) {
      counters.push({ ...fields(dp), kwhPerUnit: factor, role: set as EnergyRole, source: 'meta', why: `meta.energy: ${set}` });
    } else {
      counters.push({ ...fields(dp), kwhPerUnit: factor, ...roleFromId(dp.id), source: 'found' });
    }
  }
  counters.sort((a, b) => a.id.localeCompare(b.id));
  const status = (role: EnergyRole): RoleStatus => {
    if ((CONFIG_ROLES as readonly string[]).includes(role) && energy[role as ConfigRole] !== undefined) return 'configured';
    return counters.some((c) => c.role === role && c.kwhPerUnit !== null && !c.problem) ? 'found' : 'none';
  };
  return {
    counters,
    roles: {
      import: status('import'),
      export: status('export'),
      production: status('production'),
      consumption: status('consumption'),
      battery_charge: status('battery_charge'),
      battery_discharge: status('battery_discharge'),
    },
  };
}

function fields(dp: Datapoint): Pick<EnergyCounter, 'id' | 'unit' | 'description'> {
  return { id: dp.id, ...(dp.unit !== undefined ? { unit: dp.unit } : {}), ...(dp.description !== undefined ? { description: dp.description } : {}) };
}
