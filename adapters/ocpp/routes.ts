import type { Request, Response, Router } from 'express';
import { OutpostError, toOutpostError } from '../../core/errors.js';
import { actorText } from '../../runtime/audit/actor.js';
import { roleAtLeast, type Principal } from '../../runtime/auth/roles.js';
import type { CentralSystem } from './central.js';
import { connectorBound } from './connector-count.js';
import type { SessionView } from './sessions.js';
import { sessionSeries } from './session-series.js';

/**
 * REST for charging: sessions (JSON and CSV), charger state, the load plan, and the
 * central-system-initiated OCPP calls (OCPP 1.6 §5). The gateway's HTTP auth applies
 * (loopback or bearer token); operator roles come with the dashboard's user system.
 */
export function mountRoutes(router: Router, central: CentralSystem): void {
  router.get('/api/charging/sessions', async (req, res) => {
    res.json({ sessions: await querySessions(central, req) });
  });

  router.get('/api/charging/sessions.csv', async (req, res) => {
    const sessions = await querySessions(central, req);
    res.setHeader('Content-Type', 'text/csv; charset=utf-8');
    res.setHeader('Content-Disposition', 'attachment; filename="charging-sessions.csv"');
    res.send(toCsv(sessions));
  });

  router.get('/api/charging/sessions/:id', async (req, res) => {
    const id = Number(req.params.id);
    if (!Number.isInteger(id) || id < 1) throw new OutpostError('BAD_REQUEST', 'session id must be a positive integer');
    const stored = await central.sessions.get(id);
    if (!stored) throw new OutpostError('NOT_FOUND', `no session ${id}`);
    const session = central.sessions.getOpen(id) ?? stored;
    const meterValues = await central.sessions.meterValues(id);
    const energyUnit = central.chargers.get(session.charger)?.profile.defaultEnergyUnit ?? 'Wh';
    res.json({ session: central.sessions.view(session), meterValues, series: sessionSeries(meterValues, session.meterStartWh, energyUnit) });
  });

  router.get('/api/charging/chargers', (_req, res) => {
    res.json({
      // What the dashboard's Start button sends (config remoteStartIdTag); null: a start must name its idTag.
      remoteStartIdTag: central.options.remoteStartIdTag ?? null,
      chargers: [...central.chargers.values()].map((c) => ({
        id: c.identity,
        online: c.online,
        profile: c.profile.name,
        // NumberOfConnectors in force and where it comes from: config, charger (GetConfiguration) or profile.
        numberOfConnectors: connectorBound(c).count,
        numberOfConnectorsFrom: connectorBound(c).source,
        configured: c.config !== undefined,
        boot: c.boot,
        lastSeen: c.lastSeen,
        connectors: [...c.connectors.values()].map((k) => ({ ...k })),
        sessions: central.sessions.openSessions().filter((s) => s.charger === c.identity),
      })),
    });
  });

  router.get('/api/charging/plan', (_req, res) => {
    if (!central.loadManager) throw new OutpostError('NOT_FOUND', 'load management is not configured');
    res.json({ plan: central.loadManager.lastPlan ?? null, meterState: central.loadManager.meterState() });
  });

  // --- central-system-initiated calls (OCPP 1.6 §5) ---
  // Every call is in the audit trail with who asked, what was sent and what the charger answered.
  const call = (action: string, build: (body: Record<string, unknown>, req: Request) => Record<string, unknown>) => async (req: Request, res: Response) => {
    const identity = String(req.params.id);
    const entry = { action: 'charger.command', ...central.ctx.http.source(req, res.locals), target: identity };
    let params: Record<string, unknown> | undefined;
    try {
      const body = (req.body ?? {}) as Record<string, unknown>;
      if (typeof body !== 'object' || Array.isArray(body)) throw new OutpostError('BAD_REQUEST', 'body must be a JSON object');
      params = build(body, req);
      const result = await central.call(identity, action, params);
      central.ctx.log.info({ charger: identity, action, status: result.status, by: actorText(entry.actor) }, 'OCPP call from REST');
      const status = typeof result.status === 'string' ? result.status : undefined;
      const done = status === undefined || DONE.has(status);
      central.ctx.audit({
        ...entry,
        details: { call: action, params: auditParams(action, params), status },
        ...(done
          ? { outcome: 'ok' as const }
          : { outcome: 'refused' as const, error: { code: 'CHARGER_REJECTED', message: `the charger answered ${status}` } }),
      });
      if (result.status === 'Accepted') afterProfileCall(identity, action, params);
      res.json({ action, result });
    } catch (err) {
      const e = toOutpostError(err);
      central.ctx.audit({
        ...entry,
        details: { call: action, ...(params ? { params: auditParams(action, params) } : {}) },
        outcome: 'refused',
        error: { code: e.code, message: e.message },
      });
      throw err;
    }
  };
  /**
   * Profiles set or cleared by hand bypass load management: the load manager forgets what it
   * applied on that charger and re-plans, so its own profiles go out again (the site limit wins).
   */
  const afterProfileCall = (identity: string, action: string, params: Record<string, unknown>): void => {
    const connectorId = typeof params.connectorId === 'number' ? params.connectorId : undefined;
    if (action === 'ClearChargingProfile') central.profilesChangedExternally(identity, connectorId, true);
    else if (action === 'SetChargingProfile') central.profilesChangedExternally(identity, connectorId, false);
    else if (action === 'RemoteStartTransaction' && params.chargingProfile !== undefined) central.profilesChangedExternally(identity, connectorId, false);
  };
  const pick = (body: Record<string, unknown>, keys: string[]): Record<string, unknown> =>
    Object.fromEntries(keys.filter((k) => body[k] !== undefined).map((k) => [k, body[k]]));

  router.post(
    '/api/charging/chargers/:id/remote-start',
    call('RemoteStartTransaction', (b) => {
      const params = pick(b, ['connectorId', 'idTag', 'chargingProfile']);
      // The dashboard's Start names no idTag: the configured one is sent (README "Start and stop").
      params.idTag ??= central.options.remoteStartIdTag;
      if (params.idTag === undefined) throw new OutpostError('BAD_REQUEST', 'give "idTag", or configure remoteStartIdTag for starts that name none');
      return params;
    }),
  );
  router.post(
    '/api/charging/chargers/:id/remote-stop',
    call('RemoteStopTransaction', (b) => pick(b, ['transactionId'])),
  );
  router.post(
    '/api/charging/chargers/:id/charging-profile',
    call('SetChargingProfile', (b) => pick(b, ['connectorId', 'csChargingProfiles'])),
  );
  router.post(
    '/api/charging/chargers/:id/clear-charging-profile',
    call('ClearChargingProfile', (b) => pick(b, ['id', 'connectorId', 'chargingProfilePurpose', 'stackLevel'])),
  );
  router.post(
    '/api/charging/chargers/:id/configuration',
    call('ChangeConfiguration', (b) => pick(b, ['key', 'value'])),
  );
  // Reading a charger's configuration is an OCPP call to the device, and some chargers keep
  // backend URLs and credentials there: operators only, and secret-looking values redacted.
  router.get('/api/charging/chargers/:id/configuration', async (req: Request, res: Response) => {
    const principal = res.locals.principal as Principal | undefined;
    if (principal && !roleAtLeast(principal.role, 'operator')) {
      throw new OutpostError('FORBIDDEN', `${req.method} ${req.path} needs the operator role; "${principal.name}" is ${principal.role}`);
    }
    const key = req.query.key;
    const keys = key === undefined ? [] : Array.isArray(key) ? key.map(String) : [String(key)];
    const identity = String(req.params.id);
    const result = await central.call(identity, 'GetConfiguration', keys.length ? { key: keys } : {});
    const configurationKey = (result.configurationKey as Array<{ key: string; value?: string }> | undefined)?.map((k) =>
      SECRET_KEY.test(k.key) && k.value !== undefined ? { ...k, value: REDACTED } : k,
    );
    res.json({ action: 'GetConfiguration', result: configurationKey ? { ...result, configurationKey } : result });
  });
  router.post(
    '/api/charging/chargers/:id/trigger',
    call('TriggerMessage', (b) => pick(b, ['requestedMessage', 'connectorId'])),
  );
  router.post(
    '/api/charging/chargers/:id/reset',
    call('Reset', (b) => ({ type: b.type ?? 'Soft' })),
  );
  router.post(
    '/api/charging/chargers/:id/unlock',
    call('UnlockConnector', (b) => pick(b, ['connectorId'])),
  );
  router.post(
    '/api/charging/chargers/:id/availability',
    call('ChangeAvailability', (b) => pick(b, ['connectorId', 'type'])),
  );
}

/** Answers (OCPP 1.6 §6) meaning the charger does or will do what was asked. */
const DONE = new Set(['Accepted', 'Unlocked', 'Scheduled', 'RebootRequired']);

/** A call's parameters for the audit trail: a credential set by ChangeConfiguration is not kept. */
function auditParams(action: string, params: Record<string, unknown>): Record<string, unknown> {
  if (action === 'ChangeConfiguration' && typeof params.key === 'string' && SECRET_KEY.test(params.key)) return { ...params, value: REDACTED };
  return params;
}

/** Configuration keys whose values are credentials (OCPP 1.6 security whitepaper: AuthorizationKey; vendor keys alike). */
const SECRET_KEY = /password|secret|token|authorizationkey|apikey|privatekey|credential/i;
const REDACTED = '[redacted]';

async function querySessions(central: CentralSystem, req: Request): Promise<SessionView[]> {
  const from = parseTime(req.query.from, 'from');
  const to = parseTime(req.query.to, 'to');
  if (from !== undefined && to !== undefined && to < from) throw new OutpostError('BAD_REQUEST', '"to" is before "from"');
  const charger = req.query.charger === undefined ? undefined : String(req.query.charger);
  const limit = req.query.limit === undefined ? undefined : Number(req.query.limit);
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > 10_000))
    throw new OutpostError('BAD_REQUEST', '"limit" must be an integer 1..10000');
  return (await central.sessions.query({ from, to, charger, limit })).map((s) => central.sessions.view(s));
}

/** Epoch ms or ISO 8601. */
function parseTime(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  const text = String(value);
  const t = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isFinite(t)) throw new OutpostError('BAD_REQUEST', `"${name}" must be epoch milliseconds or an ISO 8601 time`);
  return t;
}

const CSV_COLUMNS = [
  'id',
  'charger',
  'connectorId',
  'idTag',
  'authorization',
  'start',
  'stop',
  'meterStartWh',
  'meterStopWh',
  'energyKwh',
  'stopReason',
  // Added with costs (issue 24): at the end, so existing readers keep their column positions.
  'cost',
  'currency',
  'costBasis',
] as const;

/** RFC 4180 CSV; times in ISO 8601 UTC; cells starting with = + - @ are quoted with a leading ' (CSV injection). */
export function toCsv(sessions: readonly SessionView[]): string {
  const cell = (v: unknown): string => {
    if (v === undefined || v === null) return '';
    let s = String(v);
    if (/^[=+\-@\t\r]/.test(s) && typeof v === 'string') s = `'${s}`;
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const lines = [CSV_COLUMNS.join(',')];
  for (const s of sessions) {
    lines.push(
      CSV_COLUMNS.map((c) => {
        const v = s[c];
        return cell((c === 'start' || c === 'stop') && typeof v === 'number' ? new Date(v).toISOString() : v);
      }).join(','),
    );
  }
  return lines.join('\r\n') + '\r\n';
}
