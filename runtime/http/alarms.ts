import express, { type Request, type Response } from 'express';
import type { IncomingMessage } from 'node:http';
import { OutpostError } from '../../core/errors.js';
import { actorText, sourceOf } from '../audit/actor.js';
import type { AuditSink } from '../audit/entry.js';
import { audited } from '../audit/record.js';
import { roleAtLeast, type Principal } from '../auth/roles.js';
import type { AlarmEngine } from '../alarms/engine.js';
import { isSeverity, type EventLog } from '../alarms/event-log.js';
import { plainAddress } from '../net.js';
import { intParam } from '../../core/http-params.js';

export interface AlarmRoutesDeps {
  engine: AlarmEngine;
  events: EventLog;
}

/** Cleared alarms listed beside the active ones, at most (the newest clears). */
const RECENTLY_CLEARED = 50;
const MAX_EVENTS = 500;

/**
 * `GET /api/alarms` (any role): active alarms and the recently cleared ones, with their
 * acknowledgement, and the configured rules. `POST /api/alarms/:id/ack` (operator; audited as
 * `alarm.ack`). `GET /api/events?before&limit&severity&source` (any role): the event log,
 * newest first; `severity` means that severity or worse, `before` the id of the oldest event
 * already shown.
 */
export function alarmsRoutes(deps: AlarmRoutesDeps, options: { audit?: AuditSink; clientAddress?: (req: IncomingMessage) => string } = {}): express.Router {
  const r = express.Router();
  r.get('/api/alarms', (_req: Request, res: Response) => {
    const all = deps.engine.list();
    const cleared = all
      .filter((a) => !a.active && a.raisedAt !== undefined)
      .sort((a, b) => (b.clearedAt ?? b.since) - (a.clearedAt ?? a.since))
      .slice(0, RECENTLY_CLEARED);
    res.json({ active: all.filter((a) => a.active), cleared, rules: deps.engine.ruleList() });
  });

  r.post('/api/alarms/:id/ack', async (req: Request, res: Response) => {
    const principal = res.locals.principal as Principal | undefined;
    const address = options.clientAddress?.(req) ?? plainAddress(req.socket.remoteAddress ?? 'unknown');
    const source = sourceOf(principal, address);
    const id = String(req.params.id);
    const entry = { action: 'alarm.ack', actor: source.actor, target: id, ...(source.address ? { address: source.address } : {}) };
    const result = await audited(options.audit, entry, () => {
      // The guard in front asks for operator on every write; checked again where it matters.
      if (principal && !roleAtLeast(principal.role, 'operator'))
        throw new OutpostError('FORBIDDEN', `acknowledging an alarm needs the operator role; "${principal.name}" is ${principal.role}`);
      return deps.engine.acknowledge(id, actorText(source.actor));
    });
    res.json({ ...result.alarm, stored: result.stored });
  });

  r.get('/api/events', (req: Request, res: Response) => {
    const limit = intParam(req, 'limit', MAX_EVENTS) ?? 100;
    const before = intParam(req, 'before', Number.MAX_SAFE_INTEGER);
    const severity = req.query.severity;
    if (severity !== undefined && severity !== '' && !isSeverity(severity))
      throw new OutpostError('BAD_REQUEST', '"severity" must be info, warning or alarm (that severity or worse)');
    const src = req.query.source;
    if (src !== undefined && (typeof src !== 'string' || src.length > 64))
      throw new OutpostError('BAD_REQUEST', '"source" must be one source name (an adapter id, sync, storage, …)');
    const page = deps.events.query({ limit, before, severity: severity || undefined, source: src || undefined });
    res.json({ ...page, sources: deps.events.sources(), dropped: deps.events.dropped, suppressed: deps.events.suppressed });
  });
  return r;
}
