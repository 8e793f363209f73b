import express, { type Request, type Response } from 'express';
import type { IncomingMessage } from 'node:http';
import { OutpostError } from '../../core/errors.js';
import { plainAddress } from '../net.js';
import { sourceOf } from '../audit/actor.js';
import { roleAtLeast, type Principal } from '../auth/roles.js';
import type { DatapointDeleter } from '../datapoints/deletion.js';

/** Who may delete: admins only, whatever the path rules in front say (the route checks it again). */
function requireAdmin(req: Request, res: Response): Principal {
  const principal = res.locals.principal as Principal | undefined;
  if (!principal) throw new OutpostError('NOT_AUTHENTICATED', 'log in, or send "Authorization: Bearer <token>"');
  if (!roleAtLeast(principal.role, 'admin'))
    throw new OutpostError('FORBIDDEN', `${req.method} /api/datapoints/<id> needs the admin role; "${principal.name}" is ${principal.role}`);
  return principal;
}

/**
 * `GET /api/datapoints/:id/stored` (what a deletion would remove: readings, rollups, span;
 * any role) and `DELETE /api/datapoints/:id` (admin; audited as `datapoint.delete`).
 */
export function datapointDeletionRoutes(deleter: DatapointDeleter, options: { clientAddress?: (req: IncomingMessage) => string } = {}): express.Router {
  const r = express.Router();
  r.get('/api/datapoints/:id/stored', async (req, res) => {
    res.json(await deleter.stored(req.params.id!));
  });
  r.delete('/api/datapoints/:id', async (req, res) => {
    const principal = res.locals.principal as Principal | undefined;
    const address = options.clientAddress?.(req) ?? plainAddress(req.socket.remoteAddress ?? 'unknown');
    const result = await deleter.delete(req.params.id!, sourceOf(principal, address), () => void requireAdmin(req, res));
    res.json(result);
  });
  return r;
}
