import type { Request } from 'express';
import { OutpostError } from './errors.js';

/**
 * Query parameters as every Outpost HTTP API reads them (the gateway's runtime/http and
 * Outpost Central): one helper per kind, each a clear 400 on a bad value.
 */

/** A time query parameter: epoch ms or an ISO 8601 date; undefined when absent. */
export function timeParam(req: Request, name: string): number | undefined {
  const raw = req.query[name];
  if (raw === undefined || raw === '') return undefined;
  if (typeof raw !== 'string') throw new OutpostError('BAD_REQUEST', `"${name}" must be given once`);
  const n = /^-?\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
  if (!Number.isFinite(n)) throw new OutpostError('BAD_REQUEST', `"${name}" must be epoch milliseconds or an ISO 8601 date, got "${raw.slice(0, 40)}"`);
  return n;
}

/**
 * A positive integer query parameter from 1 to `max`; undefined when absent or empty.
 * At most 15 digits, so a long string of digits is refused rather than rounded.
 */
export function intParam(req: Request, name: string, max: number): number | undefined {
  const raw = req.query[name];
  if (raw === undefined || raw === '') return undefined;
  const n = typeof raw === 'string' && /^\d{1,15}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) throw new OutpostError('BAD_REQUEST', `"${name}" must be an integer from 1 to ${max}`);
  return n;
}

/** A string query parameter given at most once; undefined when absent or empty. */
export function stringParam(req: Request, name: string): string | undefined {
  const raw = req.query[name];
  if (raw === undefined || raw === '') return undefined;
  if (typeof raw !== 'string') throw new OutpostError('BAD_REQUEST', `"${name}" must be given once`);
  return raw;
}
