import type { Datapoint } from '../../core/datapoint.js';
import type { PowerRef, SiteConfig } from './config.js';
import { idWords } from './energy-roles.js';

/** The words of an id (datapoint ids are lower case already): the one splitter of energy-roles.ts. */
export { idWords };

/** What a power datapoint is to the site (runtime/site/config.ts `site.power`). */
export type PowerRole = 'grid' | 'pv' | 'battery' | 'load' | 'charger';

/** One power datapoint in its role, as the Overview draws it and the flow adds it up. */
export interface RolePower {
  role: PowerRole;
  id: string;
  label: string;
  /** The datapoint's unit as registered (undefined: none, read as W). */
  unit?: string;
  /**
   * Reading × scale = watts in the site's sign convention: the unit (W 1, kW 1000, MW 1e6)
   * times −1 when `invert`. 0 when the datapoint cannot be read as power (see `problem`).
   */
  scale: number;
  invert: boolean;
  source: 'configured' | 'found';
  /** Why it is in this role, for people: "site.power.pv[0]" or the id rule that matched. */
  why: string;
  /** Why it is not added up: not registered (yet), not a number, not a power unit. */
  problem?: string;
}

/** A battery's state of charge (%), beside the battery power it belongs to. */
export interface RoleSoc {
  id: string;
  /** The battery power datapoint it belongs to, when there is one. */
  battery?: string;
  source: 'configured' | 'found';
  why: string;
  problem?: string;
}

export interface SiteRoles {
  power: RolePower[];
  socs: RoleSoc[];
  /** Per role: configured (`site.power.<role>` set, `[]` included), found by id, or none at all. */
  roles: Record<PowerRole | 'batterySoc', 'configured' | 'found' | 'none'>;
}

export interface RoleLookup {
  /** The adapter type of an adapter instance id (`ocpp`, `modbus`…); undefined when unknown. */
  adapterType(adapterId: string): string | undefined;
}

/** Units a power datapoint may have, to watts. No unit at all is read as W (plain MQTT auto-registers without one). */
const POWER_UNITS: Record<string, number> = { W: 1, kW: 1000, MW: 1e6 };
const ROLE_ORDER: readonly PowerRole[] = ['grid', 'pv', 'battery', 'charger', 'load'];
const ROLE_NAMES: Record<PowerRole, string> = { grid: 'Grid', pv: 'PV', battery: 'Battery', load: 'Load', charger: 'Charger' };
/** A description longer than this is not a label: the id is shorter to read. */
const MAX_LABEL = 24;
/** Words of an id that say PV production (as the Consumption page's counter roles, runtime/dashboard/README.md). */
const PV_WORDS = new Set(['pv', 'solar', 'inverter']);

/** W / kW / MW → factor to W (none: W); undefined for anything else (exact case: `mW` is not `MW`). */
export function wattsPerUnit(unit: string | undefined): number | undefined {
  if (unit === undefined || unit === '') return 1;
  return Object.hasOwn(POWER_UNITS, unit) ? POWER_UNITS[unit] : undefined;
}

/**
 * Resolves `site.power` against the registered datapoints. A role given in the config is
 * taken as it is (`[]`: none); a role left out is found by ids:
 * - grid: the first id ending in `.grid.power` (or `grid.power`);
 * - chargers: every OCPP connector's power, `<prefix>.<charger>.<connector>.power` of an
 *   adapter of type `ocpp` whose `meta.connector` is that connector (adapters/ocpp/mapping.ts);
 *   connector 0 (the whole charge point, OCPP 1.6 §3.3) only for a charger with no other;
 * - battery: ids with `battery` in them ending in `.power`;
 * - pv: ids with a word `pv`, `solar` or `inverter` ending in `.power`;
 * - loads: never found (named consumers are configured; the rest is "other loads");
 * - batterySoc: per battery `<battery id without .power>.soc`, else the one `*battery*.soc`
 *   when there is one battery.
 * An id is in one role only: configured roles first, then found in the order above.
 * Found datapoints are numbers in W, kW, MW or without a unit.
 */
export function resolveRoles(config: SiteConfig['power'], datapoints: readonly Datapoint[], lookup: RoleLookup): SiteRoles {
  const byId = new Map(datapoints.map((dp) => [dp.id, dp]));
  const taken = new Set<string>();
  const drafts: Draft[] = [];
  const roles = { grid: 'none', pv: 'none', battery: 'none', load: 'none', charger: 'none', batterySoc: 'none' } as SiteRoles['roles'];

  const configured: Array<[PowerRole, PowerRef[] | undefined, string]> = [
    ['grid', config.grid === undefined ? undefined : [config.grid], 'site.power.grid'],
    ['pv', config.pv, 'site.power.pv'],
    ['battery', config.battery, 'site.power.battery'],
    ['load', config.loads, 'site.power.loads'],
    ['charger', config.chargers, 'site.power.chargers'],
  ];
  for (const [role, refs, key] of configured) {
    if (refs === undefined) continue;
    roles[role] = 'configured';
    refs.forEach((ref, i) => {
      const { datapoint, label, invert } = typeof ref === 'string' ? { datapoint: ref, label: undefined, invert: false } : ref;
      if (taken.has(datapoint)) return;
      taken.add(datapoint);
      drafts.push({ role, id: datapoint, dp: byId.get(datapoint), label, invert, source: 'configured', why: role === 'grid' ? key : `${key}[${i}]` });
    });
  }

  const candidates = datapoints.filter((dp) => dp.type === 'number' && dp.id.endsWith('.power') && wattsPerUnit(dp.unit) !== undefined);
  const find = (role: PowerRole, rule: (dp: Datapoint) => string | undefined, one = false): void => {
    if (roles[role] !== 'none') return;
    for (const dp of candidates) {
      if (taken.has(dp.id)) continue;
      const why = rule(dp);
      if (why === undefined) continue;
      taken.add(dp.id);
      roles[role] = 'found';
      drafts.push({ role, id: dp.id, dp, invert: false, source: 'found', why });
      if (one) return;
    }
  };
  find('grid', (dp) => (dp.id === 'grid.power' || dp.id.endsWith('.grid.power') ? 'found by id: ends in grid.power' : undefined), true);
  find('charger', chargerRule(candidates, lookup));
  find('battery', (dp) => (dp.id.includes('battery') ? 'found by id: battery…power' : undefined));
  find('pv', (dp) => {
    const word = idWords(dp.id).find((w) => PV_WORDS.has(w));
    return word ? `found by id: word "${word}", ends in .power` : undefined;
  });
  // Listed by role (grid, pv, battery, chargers, loads), each role in the order configured or found.
  drafts.sort((a, b) => ROLE_ORDER.indexOf(a.role) - ROLE_ORDER.indexOf(b.role));
  const count = (role: PowerRole): number => drafts.filter((d) => d.role === role).length;
  const power = drafts.map((d) => toRolePower(d, d.label ?? (SINGLE_NAMED.has(d.role) && count(d.role) === 1 ? ROLE_NAMES[d.role] : defaultLabel(d))));
  return { power, socs: resolveSocs(config.batterySoc, power, byId, roles), roles };
}

/** A role entry before its label is known (the only grid, PV or battery is called by its role). */
interface Draft {
  role: PowerRole;
  id: string;
  dp: Datapoint | undefined;
  label?: string;
  invert: boolean;
  source: RolePower['source'];
  why: string;
}

/** Roles whose only node is called by the role's name ("Grid", "PV", "Battery") unless configured with a label. */
const SINGLE_NAMED = new Set<PowerRole>(['grid', 'pv', 'battery']);

/** `ev.cp1.1.power` of connector 1 → `ev.cp1`: the charger's part of a connector power id. */
function chargerPart(id: string, connector: number): string {
  return id.slice(0, id.length - `.${connector}.power`.length);
}

/** OCPP connector power: the id the OCPP adapter gives it, its adapter of type `ocpp`, `meta.connector` matching. */
function chargerRule(candidates: readonly Datapoint[], lookup: RoleLookup): (dp: Datapoint) => string | undefined {
  const connectorOf = (dp: Datapoint): number | undefined => {
    const connector = dp.meta?.connector;
    if (typeof connector !== 'number' || !Number.isInteger(connector) || connector < 0 || typeof dp.meta?.charger !== 'string') return undefined;
    if (!dp.id.endsWith(`.${connector}.power`) || lookup.adapterType(dp.adapter) !== 'ocpp') return undefined;
    return connector;
  };
  // Chargers with a connector ≥ 1: their connector 0 is the whole charge point (the sum), not one more car.
  const withConnectors = new Set<string>();
  for (const dp of candidates) {
    const connector = connectorOf(dp);
    if (connector !== undefined && connector > 0) withConnectors.add(`${dp.adapter} ${chargerPart(dp.id, connector)}`);
  }
  return (dp) => {
    const connector = connectorOf(dp);
    if (connector === undefined) return undefined;
    if (connector === 0 && withConnectors.has(`${dp.adapter} ${chargerPart(dp.id, 0)}`)) return undefined;
    return `found: OCPP connector ${connector} of charger ${String(dp.meta?.charger)} (adapter ${dp.adapter})`;
  };
}

function toRolePower(d: Draft, label: string): RolePower {
  const perUnit = d.dp ? wattsPerUnit(d.dp.unit) : undefined;
  const problem = !d.dp
    ? 'not registered (yet): no adapter or MQTT client has reported it'
    : d.dp.type !== 'number'
      ? `a ${d.dp.type}, not a number`
      : perUnit === undefined
        ? `unit "${d.dp.unit}" is not a power unit (W, kW, MW)`
        : undefined;
  return {
    role: d.role,
    id: d.id,
    label,
    ...(d.dp?.unit ? { unit: d.dp.unit } : {}),
    scale: problem || perUnit === undefined ? 0 : d.invert ? -perUnit : perUnit,
    invert: d.invert,
    source: d.source,
    why: d.why,
    ...(problem ? { problem } : {}),
  };
}

/** An OCPP connector by its charger and number; else a short description; else the id. */
function defaultLabel(d: Draft): string {
  const { charger, connector } = d.dp?.meta ?? {};
  if (d.role === 'charger' && typeof charger === 'string' && typeof connector === 'number') return `${charger} #${connector}`;
  const description = d.dp?.description;
  return description && description.length <= MAX_LABEL && description !== 'auto-registered from MQTT' ? description : d.id;
}

function resolveSocs(
  configured: string[] | undefined,
  power: readonly RolePower[],
  byId: ReadonlyMap<string, Datapoint>,
  roles: SiteRoles['roles'],
): RoleSoc[] {
  const batteries = power.filter((p) => p.role === 'battery');
  const problemOf = (dp: Datapoint | undefined): string | undefined =>
    !dp ? 'not registered (yet)' : dp.type !== 'number' ? `a ${dp.type}, not a number` : undefined;
  if (configured !== undefined) {
    roles.batterySoc = 'configured';
    return configured.map((id, i) => {
      const problem = problemOf(byId.get(id));
      return { id, battery: batteries[i]?.id, source: 'configured', why: `site.power.batterySoc[${i}]`, ...(problem ? { problem } : {}) };
    });
  }
  const out: RoleSoc[] = [];
  for (const battery of batteries) {
    const id = battery.id.replace(/\.power$/, '.soc');
    const dp = byId.get(id);
    if (dp?.type === 'number') out.push({ id, battery: battery.id, source: 'found', why: 'found by id: beside the battery power' });
  }
  const only = batteries.length === 1 ? batteries[0] : undefined;
  if (only && out.length === 0) {
    const socs = [...byId.values()].filter((dp) => dp.type === 'number' && dp.id.includes('battery') && dp.id.endsWith('.soc'));
    if (socs.length === 1) out.push({ id: socs[0]!.id, battery: only.id, source: 'found', why: 'found by id: the one battery…soc' });
  }
  if (out.length) roles.batterySoc = 'found';
  return out;
}
