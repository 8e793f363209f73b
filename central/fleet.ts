import type { Value } from '../core/datapoint.js';
import type { GatewayEntry } from './gateways.js';
import type { CentralDatapoint, CentralStore, GatewayState, GatewayStatus, IngestVia, SatelliteUsage } from './store/contract.js';

const DAY_MS = 86_400_000;

/**
 * A gateway as the fleet API shows it: what the config says of it, what central saw (last
 * seen, how, status) and what the gateway itself reported in its readings — the sync service's
 * `gateway.sync.*` datapoints (backlog, oldest unsent age, catch-up estimate, each link's
 * state: runtime/sync/status-datapoints.ts) and the Iridium adapter's `<id>.credits_today`,
 * `<id>.credits_month` (adapters/iridium/README.md) — beside the credits of the MO messages
 * central received itself.
 */
export interface GatewaySummary {
  id: string;
  name?: string;
  tags: string[];
  /** From the config, else Iridium's estimate from the newest satellite message. */
  location?: { lat: number; lon: number; source: 'config' | 'iridium'; cepKm?: number };
  /** `never` (nothing received), `offline` (its last will, or silent for `offlineAfterSeconds`), `satellite` (the newest arrival was an MO message), `online`. */
  state: 'never' | 'online' | 'offline' | 'satellite';
  lastSeen: number | null;
  /** How the newest arrival came: mqtt, http, rockblock. */
  link: IngestVia | null;
  status?: GatewayStatus;
  lastReceipt?: GatewayState['lastReceipt'];
  /** As the gateway reported it (`gateway.sync.*`), each with the time of the reading. */
  backlog: {
    records: Reported<number>;
    bytes: Reported<number>;
    oldestAgeSeconds: Reported<number>;
    /** Estimated seconds to send the backlog; -1: not converging. */
    catchUpSeconds: Reported<number>;
    drainRate: Reported<number>;
  };
  /** The gateway's sync links as it reported them: state and last error. */
  links: Record<string, { state: Reported<string>; lastError: Reported<string> }>;
  satellite: {
    /** Credits the gateway's modem counted (per Iridium adapter id). */
    reported: Record<string, { today: Reported<number>; month: Reported<number> }>;
    /** MO messages central received through the webhook: today and the last 30 days (UTC). */
    received: { today: SatelliteUsage; last30Days: SatelliteUsage };
    imei?: string;
  };
  datapoints: number;
}

/** A reported value with the time it was measured, or null when the gateway never sent it. */
export type Reported<T> = { v: T; t: number } | null;

export async function gatewaySummary(
  store: CentralStore,
  entry: GatewayEntry | undefined,
  id: string,
  now: number,
  offlineAfterMs: number,
): Promise<GatewaySummary> {
  const state = await store.gatewayState(id);
  const dps = await store.datapoints(id);
  const byId = new Map(dps.map((d) => [d.id, d]));
  const reported = <T>(dpId: string, type: 'number' | 'string'): Reported<T> => {
    const latest = byId.get(dpId)?.latest;
    return latest && typeof latest.v === type ? { v: latest.v as T, t: latest.t } : null;
  };
  const summary: GatewaySummary = {
    id,
    tags: entry?.config.tags ?? [],
    state: stateOf(state, now, offlineAfterMs),
    lastSeen: state?.lastSeen ?? null,
    link: state?.lastVia ?? null,
    backlog: {
      records: reported('gateway.sync.backlog', 'number'),
      bytes: reported('gateway.sync.backlog_bytes', 'number'),
      oldestAgeSeconds: reported('gateway.sync.oldest_age', 'number'),
      catchUpSeconds: reported('gateway.sync.catchup', 'number'),
      drainRate: reported('gateway.sync.drain_rate', 'number'),
    },
    links: links(dps, reported),
    satellite: {
      reported: credits(dps, reported),
      received: {
        today: await store.satelliteUsage(id, Math.floor(now / DAY_MS) * DAY_MS, now),
        last30Days: await store.satelliteUsage(id, now - 30 * DAY_MS, now),
      },
      ...(entry?.config.iridium ? { imei: entry.config.iridium.imei } : {}),
    },
    datapoints: dps.length,
  };
  if (entry?.config.name) summary.name = entry.config.name;
  if (entry?.config.location) summary.location = { ...entry.config.location, source: 'config' };
  else if (state?.satellite?.lat !== undefined && state.satellite.lon !== undefined)
    summary.location = {
      lat: state.satellite.lat,
      lon: state.satellite.lon,
      source: 'iridium',
      ...(state.satellite.cepKm !== undefined ? { cepKm: state.satellite.cepKm } : {}),
    };
  if (state?.status) summary.status = state.status;
  if (state?.lastReceipt) summary.lastReceipt = state.lastReceipt;
  return summary;
}

function stateOf(state: GatewayState | undefined, now: number, offlineAfterMs: number): GatewaySummary['state'] {
  if (!state?.lastSeen) return 'never';
  if (now - state.lastSeen > offlineAfterMs) return 'offline';
  // Its will (or a clean stop) said offline and nothing came since.
  if (state.status?.state === 'offline' && state.status.at >= state.lastSeen) return 'offline';
  return state.lastVia === 'rockblock' ? 'satellite' : 'online';
}

type ReportedFn = <T>(id: string, type: 'number' | 'string') => Reported<T>;

function links(dps: readonly CentralDatapoint[], reported: ReportedFn): GatewaySummary['links'] {
  const out: GatewaySummary['links'] = {};
  for (const d of dps) {
    const m = /^gateway\.sync\.link\.(.+)\.state$/.exec(d.id);
    if (!m) continue;
    out[m[1]!] = { state: reported<string>(d.id, 'string'), lastError: reported<string>(`gateway.sync.link.${m[1]}.last_error`, 'string') };
  }
  return out;
}

function credits(dps: readonly CentralDatapoint[], reported: ReportedFn): GatewaySummary['satellite']['reported'] {
  const out: GatewaySummary['satellite']['reported'] = {};
  for (const d of dps) {
    const m = /^(.+)\.credits_today$/.exec(d.id);
    if (!m || m[1]!.startsWith('gateway.')) continue;
    out[m[1]!] = { today: reported<number>(d.id, 'number'), month: reported<number>(`${m[1]}.credits_month`, 'number') };
  }
  return out;
}

/** A datapoint as the API lists it: the gateway's `GET /api/datapoints` shape, with its gateway. */
export function datapointView(d: CentralDatapoint): { gateway: string; id: string; type: string; latest: { v: Value; t: number; q?: string } | null } {
  return { gateway: d.gateway, id: d.id, type: d.type, latest: d.latest ?? null };
}
