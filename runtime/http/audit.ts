import express, { type Request, type Response } from 'express';
import { OutpostError } from '../../core/errors.js';
import { roleAtLeast, type Principal } from '../auth/roles.js';
import type { AuditLog } from '../audit/audit-log.js';
import { intParam } from '../../core/http-params.js';

const MAX_LIMIT = 500;

/**
 * `GET /api/audit?limit=&before=&action=`: the newest audit entries first; `before` is the id
 * of the oldest entry already shown (load older), `action` one action or a family (`user`).
 * Admin only: the path is on the admin list of runtime/auth, and checked here again because
 * the trail names every user, token and client address.
 */
export function auditRoutes(audit: AuditLog): express.Router {
  const r = express.Router();
  r.get('/api/audit', (req: Request, res: Response) => {
    const principal = res.locals.principal as Principal | undefined;
    if (!principal) throw new OutpostError('NOT_AUTHENTICATED', 'log in, or send "Authorization: Bearer <token>"');
    if (!roleAtLeast(principal.role, 'admin'))
      throw new OutpostError('FORBIDDEN', `GET /api/audit needs the admin role; "${principal.name}" is ${principal.role}`);
    const limit = intParam(req, 'limit', MAX_LIMIT) ?? 100;
    const before = intParam(req, 'before', Number.MAX_SAFE_INTEGER);
    const action = req.query.action;
    if (action !== undefined && (typeof action !== 'string' || !/^[a-z.-]{0,40}$/.test(action)))
      throw new OutpostError('BAD_REQUEST', '"action" must be an action name such as setpoint or user.add');
    const page = audit.query({ limit, before, action: action || undefined });
    res.setHeader('Cache-Control', 'no-store');
    res.json({ ...page, actions: audit.actions(), dropped: audit.dropped, suppressed: audit.suppressed });
  });
  return r;
}
