import type { Request, Response } from 'express';
import type { IncomingMessage } from 'node:http';
import { DATAPOINT_ID } from '../../core/datapoint.js';
import { OutpostError } from '../../core/errors.js';
import { stringParam } from '../../core/http-params.js';
import '../../runtime/alarms/errors.js';
import { ALARM_DATAPOINT_PREFIX } from '../../runtime/alarms/state.js';
import { actorText, sourceOf } from '../../runtime/audit/actor.js';
import type { AuditSink } from '../../runtime/audit/entry.js';
import { audited } from '../../runtime/audit/record.js';
import { roleAtLeast, type Principal } from '../../runtime/auth/roles.js';
import type { GatewayDirectory } from '../gateways.js';
import type { Logger } from '../log.js';
import type { CentralHttp } from '../http/server.js';
import type { CentralStore, StoredValue } from '../store/contract.js';
import type { AlarmAcks } from './acks.js';

/** Readings looked back through, at most, to find when a boolean alarm became true. */
const BOOLEAN_LOOKBACK = 500;

/**
 * A gateway's alarm as central shows it: its datapoint `alarm.<id>` (runtime/alarms/state.ts:
 * the value is the alarm's state, sent upstream first), or a boolean datapoint named `alarm.*`
 * (a site that flags alarms as true/false, an Iridium table's `alarm: true` entry), with the
 * acknowledgement given at the site or here.
 */
export interface FleetAlarm {
  gateway: string;
  /** The alarm's id: its datapoint without `alarm.`. */
  id: string;
  datapoint: string;
  severity: 'alarm' | 'warning';
  message: string;
  active: boolean;
  /** When the current (or last) raise happened, as the gateway reported it; boolean alarms: when the value became true. */
  raisedAt?: number;
  clearedAt?: number;
  /** The time of the alarm datapoint's newest reading. */
  t: number;
  acknowledged: boolean;
  /** Who acknowledged the raise: at the site (in the state the gateway sent) or at central. */
  ack?: { by: string; at: number; where: 'site' | 'central' };
  subjects?: string[];
  value?: number;
}

export interface AlarmRouteDeps {
  http: CentralHttp;
  store: CentralStore;
  gateways: GatewayDirectory;
  acks: AlarmAcks;
  audit: AuditSink;
  /** The client's address as the web UI's security sees it (trusted proxies applied). */
  clientAddress(req: IncomingMessage): string;
  now: () => number;
  log: Logger;
  /**
   * Sends the acknowledgement to the site as an `alarm.ack` command (central/commands), once
   * commands are open; answers the command's id. Unset: kept at central only.
   */
  forward?: AlarmForwarder;
}

export interface AlarmForwarder {
  forward(gateway: string, alarm: string, by: string): Promise<string | undefined>;
}

/** The alarm a datapoint's newest reading says, or undefined when the value is no alarm state. */
export async function alarmOf(store: CentralStore, acks: AlarmAcks, gateway: string, datapoint: string, latest: StoredValue): Promise<FleetAlarm | undefined> {
  const id = datapoint.slice(ALARM_DATAPOINT_PREFIX.length);
  const v = latest.v;
  let alarm: FleetAlarm;
  if (typeof v === 'boolean') {
    alarm = { gateway, id, datapoint, severity: 'alarm', message: datapoint, active: v, t: latest.t, acknowledged: false };
    if (v) alarm.raisedAt = await trueSince(store, gateway, datapoint, latest.t);
  } else if (v !== null && typeof v === 'object' && !Array.isArray(v) && typeof (v as { active?: unknown }).active === 'boolean') {
    const s = v as Record<string, unknown>;
    const num = (x: unknown): number | undefined => (typeof x === 'number' && Number.isFinite(x) ? x : undefined);
    alarm = {
      gateway,
      id,
      datapoint,
      severity: s.severity === 'warning' ? 'warning' : 'alarm',
      message: typeof s.message === 'string' ? s.message.slice(0, 500) : datapoint,
      active: s.active === true,
      t: latest.t,
      acknowledged: false,
    };
    // An active state without `raisedAt` (another producer's): raised when it became active.
    const raisedAt = num(s.raisedAt) ?? (alarm.active ? (num(s.since) ?? latest.t) : undefined);
    if (raisedAt !== undefined) alarm.raisedAt = raisedAt;
    const clearedAt = num(s.clearedAt);
    if (clearedAt !== undefined) alarm.clearedAt = clearedAt;
    if (Array.isArray(s.subjects)) alarm.subjects = s.subjects.filter((x): x is string => typeof x === 'string').slice(0, 20);
    const value = num(s.value);
    if (value !== undefined) alarm.value = value;
    if (s.acknowledged === true)
      alarm.ack = { by: typeof s.ackedBy === 'string' ? s.ackedBy.slice(0, 200) : 'the site', at: num(s.ackedAt) ?? latest.t, where: 'site' };
  } else return undefined;
  const central = acks.get(gateway, id);
  // Central's acknowledgement holds for the raise it was given for; the site's, if any, is newer news.
  if (!alarm.ack && central && alarm.raisedAt !== undefined && central.raisedAt === alarm.raisedAt)
    alarm.ack = { by: central.by, at: central.at, where: 'central' };
  alarm.acknowledged = alarm.ack !== undefined;
  return alarm;
}

/** When a boolean alarm's current run of `true` began: the oldest of the newest readings that are all true. */
async function trueSince(store: CentralStore, gateway: string, datapoint: string, newest: number): Promise<number> {
  const readings = await store.query(gateway, datapoint, { from: 0, to: newest, limit: BOOLEAN_LOOKBACK, order: 'desc' });
  let since = newest;
  for (const r of readings) {
    if (r.v !== true) break;
    since = r.t;
  }
  return since;
}

/** Active before cleared, unacknowledged first, alarms before warnings, the newest raise first. */
function urgency(a: FleetAlarm, b: FleetAlarm): number {
  return (
    Number(b.active) - Number(a.active) ||
    Number(a.acknowledged) - Number(b.acknowledged) ||
    Number(b.severity === 'alarm') - Number(a.severity === 'alarm') ||
    (b.raisedAt ?? b.t) - (a.raisedAt ?? a.t)
  );
}

/** Every alarm of one gateway or of all, from the newest readings of their `alarm.*` datapoints. */
export async function fleetAlarms(store: CentralStore, acks: AlarmAcks, gateway?: string): Promise<FleetAlarm[]> {
  const out: FleetAlarm[] = [];
  for (const dp of await store.datapoints(gateway)) {
    if (!dp.id.startsWith(ALARM_DATAPOINT_PREFIX) || !dp.latest) continue;
    const alarm = await alarmOf(store, acks, dp.gateway, dp.id, dp.latest);
    if (alarm) out.push(alarm);
  }
  return out.sort(urgency);
}

/**
 * `GET /api/alarms?gateway=&state=active|all` (any role): the alarms across the fleet, active
 * ones by default, with counts per gateway. `POST /api/gateways/:gateway/alarms/:id/ack`
 * (operator; audited as `alarm.ack`, refusals too): acknowledged here, for the raise shown.
 */
export function alarmRoutes(d: AlarmRouteDeps): void {
  d.http.route('get', '/api/alarms', 'api', async (req: Request, res: Response) => {
    const gateway = stringParam(req, 'gateway');
    const state = stringParam(req, 'state') ?? 'active';
    if (state !== 'active' && state !== 'all') throw new OutpostError('BAD_REQUEST', '"state" is active (the default) or all');
    const all = await fleetAlarms(d.store, d.acks, gateway);
    const items = state === 'all' ? all : all.filter((a) => a.active);
    const byGateway: Record<string, { active: number; unacknowledged: number }> = {};
    for (const a of all) {
      const g = (byGateway[a.gateway] ??= { active: 0, unacknowledged: 0 });
      if (a.active) g.active++;
      if (a.active && !a.acknowledged) g.unacknowledged++;
    }
    res.json({
      items,
      count: items.length,
      active: all.filter((a) => a.active).length,
      unacknowledged: all.filter((a) => a.active && !a.acknowledged).length,
      byGateway,
    });
  });

  d.http.route('post', '/api/gateways/:gateway/alarms/:id/ack', 'api', async (req: Request, res: Response) => {
    const principal = res.locals.principal as Principal | undefined;
    const source = sourceOf(principal, d.clientAddress(req));
    const gateway = String(req.params.gateway);
    const id = String(req.params.id);
    const entry = { action: 'alarm.ack', ...source, target: `${gateway.slice(0, 64)}/${id.slice(0, 128)}`, details: { gateway: gateway.slice(0, 64) } };
    const alarm = await audited(
      d.audit,
      entry,
      async () => {
        // The guard asks for operator on every write; checked again where it matters.
        if (!principal || !roleAtLeast(principal.role, 'operator'))
          throw new OutpostError(
            'FORBIDDEN',
            `acknowledging an alarm needs the operator role; "${principal?.name ?? 'anonymous'}" is ${principal?.role ?? 'not logged in'}`,
          );
        const datapoint = `${ALARM_DATAPOINT_PREFIX}${id}`;
        if (!DATAPOINT_ID.test(datapoint)) throw new OutpostError('ALARM_INVALID', `"${id.slice(0, 64)}" is not an alarm id`);
        if (!d.gateways.get(gateway) && !(await d.store.gatewayState(gateway))) throw new OutpostError('NOT_FOUND', `no gateway "${gateway.slice(0, 64)}"`);
        const latest = await d.store.latest(gateway, datapoint);
        const found = latest && (await alarmOf(d.store, d.acks, gateway, datapoint, latest));
        if (!found) throw new OutpostError('ALARM_UNKNOWN', `gateway "${gateway}" has sent no alarm "${id}" (datapoint ${datapoint})`);
        if (found.ack)
          throw new OutpostError('ALARM_ACKNOWLEDGED', `already acknowledged by ${found.ack.by} ${found.ack.where === 'site' ? 'at the site' : 'at central'}`);
        // ISA-18.2: an active alarm, or one that cleared before anyone acknowledged it.
        if (found.raisedAt === undefined) throw new OutpostError('ALARM_NOT_RAISED', `alarm "${id}" of "${gateway}" is not raised`);
        const ack = { gateway, alarm: id, raisedAt: found.raisedAt, by: actorText(source.actor), at: d.now() };
        await d.acks.record(ack);
        return { ...found, acknowledged: true, ack: { by: ack.by, at: ack.at, where: 'central' as const } };
      },
      (a) => ({ alarm: a.id, raisedAt: a.raisedAt, severity: a.severity }),
    );
    // Kept here first (the fleet view is right at once), then sent to the site as a command, whose
    // state says when the gateway applied it; a site that refuses it (its own ack came first) says why.
    let command: string | undefined;
    try {
      command = await d.forward?.forward(gateway, id, alarm.ack?.by ?? 'central');
    } catch (err) {
      d.log.warn({ gateway, alarm: id, err: (err as Error).message }, 'alarm acknowledgement not queued for the site; kept at central');
    }
    res.json({ ...alarm, forwarded: command !== undefined, ...(command ? { command } : {}) });
  });
}
