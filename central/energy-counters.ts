import { type EnergyRole, idWords as words, kwhPerUnit, roleFromId } from '../runtime/site/energy-roles.js';
import type { CentralDatapoint } from './store/contract.js';

/**
 * A site's energy counters as central can tell them (the site page's Consumption card,
 * `GET /api/gateways/:gateway/energy/counters`). The gateway decides with the datapoint's
 * unit, `meta.counter`, `meta.energy` and its `site.energy` config
 * (runtime/site/energy-roles.ts); none of those comes upstream — a record is
 * `[seq, id, t, v, q]` (runtime/sync/codec.ts) — so central has the id and the type of the
 * newest reading only:
 *
 * - a counter is a number datapoint whose id has the word `energy` (or a unit word `wh`, `kwh`,
 *   `mwh`), not the gateway's own bookkeeping (`gateway.*`, `alarm.*`), not reactive or
 *   apparent energy (`kvarh`, `kVAh`), and not a charger's `session_energy` (it restarts with
 *   every session and its energy register counts it already: the gateway's rule);
 * - what it counts: the gateway's own `roleFromId` (import, export, production, …);
 * - its unit: a unit word of the id (`_wh`, `_kwh`, `_mwh`), else kWh — what Outpost's meter
 *   profiles and the OCPP adapter store — marked `unitFrom: 'assumed'` so the page says so.
 */
export interface CentralEnergyCounter {
  id: string;
  unit: 'Wh' | 'kWh' | 'MWh';
  kwhPerUnit: number;
  /** `id`: the id names the unit; `assumed`: kWh, because nothing upstream says. */
  unitFrom: 'id' | 'assumed';
  role: EnergyRole;
  /** Why it has this role, for people (the gateway's words). */
  why: string;
  /** Its newest reading. */
  latest: { v: number; t: number } | null;
}

/** Words that make an id an energy counter. */
const ENERGY_WORDS = new Set(['energy', 'wh', 'kwh', 'mwh']);
/** Energy that is not active energy: not added up with it. */
const NOT_ACTIVE = new Set(['reactive', 'apparent', 'varh', 'kvarh', 'mvarh', 'vah', 'kvah', 'mvah']);
/** Unit words of an id, as the gateway's units (core units are case-sensitive: `mwh` is MWh, as a meter would name it). */
const UNIT_WORDS: Readonly<Record<string, 'Wh' | 'kWh' | 'MWh'>> = { wh: 'Wh', kwh: 'kWh', mwh: 'MWh' };

/** Whether central takes the datapoint for an energy counter (see the interface comment). */
export function isCentralCounter(dp: Pick<CentralDatapoint, 'id' | 'type'>): boolean {
  if (dp.type !== 'number' || /^(gateway|alarm)\./.test(dp.id)) return false;
  if (/(^|\.)session_energy$/.test(dp.id)) return false;
  const w = words(dp.id);
  return w.some((x) => ENERGY_WORDS.has(x)) && !w.some((x) => NOT_ACTIVE.has(x));
}

/** The energy counters among a gateway's datapoints, by id. */
export function centralEnergyCounters(datapoints: readonly CentralDatapoint[]): CentralEnergyCounter[] {
  const out: CentralEnergyCounter[] = [];
  for (const dp of datapoints) {
    if (!isCentralCounter(dp)) continue;
    const named = words(dp.id).find((w) => Object.hasOwn(UNIT_WORDS, w));
    const unit = named ? UNIT_WORDS[named]! : 'kWh';
    const latest = dp.latest && typeof dp.latest.v === 'number' ? { v: dp.latest.v, t: dp.latest.t } : null;
    out.push({ id: dp.id, unit, kwhPerUnit: kwhPerUnit(unit)!, unitFrom: named ? 'id' : 'assumed', ...roleFromId(dp.id), latest });
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}
