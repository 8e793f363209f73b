import type { Request } from 'express';
import { OutpostError } from '../../core/errors.js';

/** A time query parameter: epoch ms or an ISO 8601 date; undefined when absent. */
export function timeParam(req: Request, name: string): number | undefined {
  const raw = req.query[name];
  if (raw === undefined || raw === '') return undefined;
  if (typeof raw !== 'string') throw new OutpostError('BAD_REQUEST', `"${name}" must be given once`);
  const n = /^-?\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
  if (!Number.isFinite(n)) throw new OutpostError('BAD_REQUEST', `"${name}" must be epoch milliseconds or an ISO 8601 date, got "${raw}"`);
  return n;
}
