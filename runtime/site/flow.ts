import type { Value } from '../../core/datapoint.js';
import type { PowerRole, RolePower, RoleSoc, SiteRoles } from './roles.js';

/**
 * A reading older than this is drawn as stale ("no reading for 3 min") and still added up
 * as the last thing known. Meters polled over Modbus or MQTT report every few seconds; OCPP
 * chargers send MeterValues every MeterValueSampleInterval (typically 10–60 s, none at all
 * while idle on some models), so two minutes flags a silent meter without flagging a busy
 * charger. A reading with quality stale or bad, or that is not a number, is stale at once.
 */
export const STALE_AFTER_MS = 120_000;

export interface FlowNode {
  role: PowerRole;
  id: string;
  label: string;
  /** Reading × scale = W in the site's sign convention (roles.ts); the browser applies it to live readings. */
  scale: number;
  /** Registered unit of the reading (W when absent). */
  unit?: string;
  /** Watts, site convention; null: no usable reading (none yet, not a number, quality bad). */
  w: number | null;
  /** Time of the reading (epoch ms); null: none. */
  t: number | null;
  stale: boolean;
  /** Why it is not added up (roles.ts). */
  problem?: string;
}

export interface FlowSoc {
  id: string;
  battery?: string;
  /** %, or null without a usable reading. */
  v: number | null;
  t: number | null;
  stale: boolean;
}

/**
 * The site's power balance, W. House consumption = grid + pv + battery (what comes in from
 * the grid, the panels and the batteries is used on site); other loads = consumption −
 * chargers − named loads, never drawn negative: when the measured consumers add up to more
 * than the consumption (meters read at different moments, a sign the wrong way round),
 * `otherW` is 0, `otherNegative` says so and `excessW` by how much.
 */
export interface Balance {
  gridW: number;
  pvW: number;
  batteryW: number;
  chargersW: number;
  loadsW: number;
  otherW: number;
  consumptionW: number;
  otherNegative: boolean;
  excessW: number;
  /** Nodes without a usable reading (counted as 0 above). */
  missing: number;
}

export interface SiteFlow {
  /** Gateway time of the answer (epoch ms): the browser judges staleness against it. */
  t: number;
  staleAfterMs: number;
  nodes: FlowNode[];
  balance: Balance;
  socs: FlowSoc[];
}

/**
 * The power balance of the nodes: THE formula on the gateway side. Its browser twin is
 * `balanceOf` in runtime/dashboard/public/flow.js; test/runtime/site/flow.test.ts checks
 * that both give the same answer. Sums are rounded to whole watts at the end.
 */
export function balanceOf(nodes: ReadonlyArray<Pick<FlowNode, 'role' | 'w'>>): Balance {
  const sum: Record<PowerRole, number> = { grid: 0, pv: 0, battery: 0, load: 0, charger: 0 };
  let missing = 0;
  for (const n of nodes) {
    if (n.w === null) missing++;
    else sum[n.role] += n.w;
  }
  const consumption = sum.grid + sum.pv + sum.battery;
  const other = consumption - sum.charger - sum.load;
  return {
    gridW: Math.round(sum.grid),
    pvW: Math.round(sum.pv),
    batteryW: Math.round(sum.battery),
    chargersW: Math.round(sum.charger),
    loadsW: Math.round(sum.load),
    otherW: Math.max(0, Math.round(other)),
    consumptionW: Math.round(consumption),
    otherNegative: Math.round(other) < 0,
    excessW: Math.max(0, -Math.round(other)),
    missing,
  };
}

/** A reading as a number of watts (or %), or null when it is not one. */
function numberOf(v: Value | undefined): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

interface Reading {
  v: Value;
  t: number;
  q?: 'stale' | 'bad';
}

function readingOf(id: string, latest: (id: string) => Reading | undefined, now: number): { v: number | null; t: number | null; stale: boolean } {
  const r = latest(id);
  if (!r) return { v: null, t: null, stale: true };
  const v = r.q ? null : numberOf(r.v);
  return { v, t: r.t, stale: v === null || now - r.t > STALE_AFTER_MS };
}

/** The flow now: each role's latest reading in W, the balance, the batteries' SoC. */
export function siteFlow(roles: SiteRoles, latest: (id: string) => Reading | undefined, now: number): SiteFlow {
  const nodes = roles.power.map((p: RolePower): FlowNode => {
    const r = p.problem ? { v: null, t: null, stale: true } : readingOf(p.id, latest, now);
    return {
      role: p.role,
      id: p.id,
      label: p.label,
      scale: p.scale,
      ...(p.unit ? { unit: p.unit } : {}),
      // `+ 0` turns the −0 of an inverted 0 W into 0.
      w: r.v === null ? null : r.v * p.scale + 0,
      t: r.t,
      stale: r.stale,
      ...(p.problem ? { problem: p.problem } : {}),
    };
  });
  const socs = roles.socs.map((s: RoleSoc): FlowSoc => ({ id: s.id, ...(s.battery ? { battery: s.battery } : {}), ...readingOf(s.id, latest, now) }));
  return { t: now, staleAfterMs: STALE_AFTER_MS, nodes, balance: balanceOf(nodes), socs };
}
